/* dtrain: one binary, subcommands.
 *
 *   dtrain <job> [--config FILE] [--key value ...]     train a job (classify, ...)
 *   dtrain prepare mnist --idx DIR --out FILE.h5        convert raw data to HDF5
 *   dtrain prepare text --in FILE|DIR|- ... --out FILE.h5|DIR [--tokenizer char|byte|bpe] [--bpe DIR] ...
 *   dtrain prepare bpe --in FILE|DIR|- ... --vocab-size N --out DIR      learn a BPE vocabulary
 *   dtrain sample JOB --ckpt PATH [...]                  generate from a checkpoint
 *   dtrain eval JOB --ckpt PATH [...]                    evaluate a checkpoint
 *   dtrain report RUN_DIR... --out DIR [...]              runs side by side (report/)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify/classify.h"
#include "diffusion/diffusion.h"
#include "gpt/gpt.h"
#include "mnist_idx.h"
#include "report.h"
#include "tokens.h"
#include "trainer.h"

static const job *const jobs[] = {&classify_job, &gpt_job, &diffusion_job};
#define NJOBS (sizeof jobs / sizeof jobs[0])

static void usage(FILE *f) {
    fprintf(f, "usage: dtrain <command> [options]\n\ntraining jobs (dtrain JOB --help for keys):\n");
    for (size_t i = 0; i < NJOBS; i++) fprintf(f, "  %-10s %s\n", jobs[i]->name, jobs[i]->description);
    fprintf(f, "\ndata:\n  prepare mnist --idx DIR --out FILE.h5   MNIST idx files (gzipped or not) -> HDF5\n"
               "  prepare text --in FILE|DIR|- --out FILE.h5|DIR [--tokenizer char|byte|bpe] [--bpe DIR] ...\n"
               "                                         text -> train/val token HDF5 (one file or shards)\n"
               "  prepare bpe --in FILE|DIR|- --vocab-size N --out DIR\n"
               "                                         text -> byte-level BPE vocab.json + merges.txt\n"
               "\ncheckpoints:\n  sample JOB --ckpt PATH [...]            generate from a checkpoint\n"
               "  eval JOB --ckpt PATH [...]              evaluate a checkpoint\n"
               "\nruns:\n  report RUN_DIR... --out DIR [...]      runs side by side: table, outputs, plots\n");
}

/* --name VALUE from argv, or NULL */
static const char *opt(int argc, char **argv, const char *name) {
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return NULL;
}

static int check_opts(int argc, char **argv, const char *const *known, const char *cmd) {
    for (int i = 0; i < argc; i += 2) {
        int ok = 0;
        for (const char *const *k = known; *k; k++) ok |= strcmp(argv[i], *k) == 0;
        if (!ok || i + 1 >= argc) {
            fprintf(stderr, "dtrain %s: %s '%s'\n", cmd, ok ? "missing value for" : "unknown option",
                    argv[i]);
            return -1;
        }
    }
    return 0;
}

/* --help or -h where an option name may stand */
static int wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i += 2)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

static void prepare_mnist_usage(FILE *f) {
    fprintf(f, "usage: dtrain prepare mnist --idx DIR --out FILE.h5\n\n"
               "Converts DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] into one HDF5 file.\n\n"
               "options:\n"
               "  --idx DIR      directory with the four idx files, each gzipped or plain (not both)\n"
               "  --out FILE.h5  the HDF5 file to write (replaced only by a complete file)\n"
               "  --help         print this help and exit\n");
}

static void prepare_text_usage(FILE *f) {
    fprintf(f, "usage: dtrain prepare text --in FILE|DIR|- [--in ...] --out FILE.h5|DIR [--tokenizer char|byte|bpe] "
               "[--bpe DIR] [--val-fraction 0.1] [--shard-tokens N]\n\n"
               "Tokenizes text into train and val token ids: one HDF5 file (one input file, read whole) or a token\n"
               "directory (with --shard-tokens, several inputs, a directory or -: inputs streamed in bounded\n"
               "memory, ids in shard files of --shard-tokens ids plus index.h5).\n\n"
               "options:\n"
               "  --in FILE|DIR|-        text to tokenize (repeatable; a directory: its files in name order, "
               "recursively; -: standard input)\n"
               "  --out FILE.h5|DIR      the file or directory to write (replaced only by a complete one)\n"
               "  --tokenizer char|byte|bpe  char: one id per Unicode code point (UTF-8 input, .h5 only); byte: ids "
               "0..255;\n"
               "                         bpe: byte-level BPE from --bpe (default char)\n"
               "  --bpe DIR              vocab.json and merges.txt (dtrain prepare bpe, GPT-2's, or the tokenizers "
               "package's)\n"
               "  --val-fraction F       the share of tokens, at the end, held out for validation (default 0.1)\n"
               "  --shard-tokens N       write a token directory, N ids per shard file (default for streamed inputs: "
               "16777216)\n"
               "  --help                 print this help and exit\n");
}

static void prepare_bpe_usage(FILE *f) {
    fprintf(f, "usage: dtrain prepare bpe --in FILE|DIR|- [--in ...] --vocab-size N --out DIR [--max-words N]\n\n"
               "Learns a byte-level BPE vocabulary (GPT-2's scheme) from text and writes DIR/vocab.json and\n"
               "DIR/merges.txt. Inputs are streamed; memory is bounded by --max-words distinct words.\n\n"
               "options:\n"
               "  --in FILE|DIR|-   text to learn from (repeatable; a directory: its files; -: standard input)\n"
               "  --vocab-size N    tokens in all: the 256 bytes, the merges, and <|endoftext|> (257 to 16777216)\n"
               "  --out DIR         where to write vocab.json and merges.txt (created if missing)\n"
               "  --max-words N     distinct pre-tokenized words counted at most (default 2000000; the rarest are "
               "dropped)\n"
               "  --help            print this help and exit\n");
}

/* Every value of a repeatable option, in order; *n of them. */
static const char **opt_all(int argc, char **argv, const char *name, int *n) {
    const char **v = malloc(sizeof *v * (size_t)(argc + 1));
    *n = 0;
    for (int i = 0; v && i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) v[(*n)++] = argv[++i];
    return v;
}

static int parse_count(const char *cmd, const char *name, const char *s, long lo, long *out) {
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : *out;
    if (s && (errno || end == s || *end || v < lo)) {
        fprintf(stderr, "dtrain %s: bad value '%s' for %s: expected an integer >= %ld\n", cmd, s, name, lo);
        return -1;
    }
    *out = v;
    return 0;
}

static int prepare_text_cmd(int argc, char **argv) {
    static const char *const known[] = {"--in", "--out", "--tokenizer", "--bpe", "--val-fraction", "--shard-tokens",
                                        NULL};
    if (wants_help(argc - 1, argv + 1)) {
        prepare_text_usage(stdout);
        return EXIT_OK;
    }
    if (check_opts(argc - 1, argv + 1, known, "prepare text") != 0) return EXIT_USAGE;
    int nin = 0;
    const char **in = opt_all(argc, argv, "--in", &nin);
    const char *out = opt(argc, argv, "--out"), *tok = opt(argc, argv, "--tokenizer"), *vf = opt(argc, argv, "--val-fraction");
    long shard = 0;
    int rc = EXIT_USAGE;
    if (!in || nin == 0 || !out) {
        prepare_text_usage(stderr);
    } else if (tok && strcmp(tok, "char") != 0 && strcmp(tok, "byte") != 0 && strcmp(tok, "bpe") != 0) {
        fprintf(stderr, "dtrain prepare text: bad value '%s' for --tokenizer: expected char, byte or bpe\n", tok);
    } else if (parse_count("prepare text", "--shard-tokens", opt(argc, argv, "--shard-tokens"), 1, &shard) == 0) {
        char *end = NULL;
        double f = vf ? strtod(vf, &end) : 0.1;
        if (vf && (end == vf || *end || !(f > 0 && f < 1))) {
            fprintf(stderr, "dtrain prepare text: bad value '%s' for --val-fraction: expected a number in (0, 1)\n", vf);
        } else {
            text_job tj = {in, nin, out, tok ? tok : "char", opt(argc, argv, "--bpe"), f, shard};
            char err[1024];
            int r = prepare_text_job(&tj, err, sizeof err);
            if (r != PREPARE_OK) fprintf(stderr, "dtrain prepare text: %s\n", err);
            else printf("wrote %s\n", out);
            rc = r == PREPARE_OK ? EXIT_OK : r == PREPARE_BAD_INPUT ? EXIT_USAGE : EXIT_RUNTIME;
        }
    }
    free(in);
    return rc;
}

static int prepare_bpe_cmd(int argc, char **argv) {
    static const char *const known[] = {"--in", "--out", "--vocab-size", "--max-words", NULL};
    if (wants_help(argc - 1, argv + 1)) {
        prepare_bpe_usage(stdout);
        return EXIT_OK;
    }
    if (check_opts(argc - 1, argv + 1, known, "prepare bpe") != 0) return EXIT_USAGE;
    int nin = 0;
    const char **in = opt_all(argc, argv, "--in", &nin);
    const char *out = opt(argc, argv, "--out"), *vs = opt(argc, argv, "--vocab-size");
    long vocab = 0, max_words = 2000000;
    int rc = EXIT_USAGE;
    if (!in || nin == 0 || !out || !vs) {
        prepare_bpe_usage(stderr);
    } else if (parse_count("prepare bpe", "--vocab-size", vs, 257, &vocab) == 0 &&
               parse_count("prepare bpe", "--max-words", opt(argc, argv, "--max-words"), 1024, &max_words) == 0) {
        char err[1024];
        int r = prepare_bpe(in, nin, vocab, max_words, out, err, sizeof err);
        if (r != PREPARE_OK) fprintf(stderr, "dtrain prepare bpe: %s\n", err);
        else printf("wrote %s/vocab.json and %s/merges.txt\n", out, out);
        rc = r == PREPARE_OK ? EXIT_OK : r == PREPARE_BAD_INPUT ? EXIT_USAGE : EXIT_RUNTIME;
    }
    free(in);
    return rc;
}

static int prepare(int argc, char **argv) {
    if (argc < 1) {
        fprintf(stderr, "dtrain prepare: expected a dataset kind: mnist\n");
        return EXIT_USAGE;
    }
    if (strcmp(argv[0], "mnist") == 0) {
        static const char *const known[] = {"--idx", "--out", NULL};
        if (wants_help(argc - 1, argv + 1)) {
            prepare_mnist_usage(stdout);
            return EXIT_OK;
        }
        if (check_opts(argc - 1, argv + 1, known, "prepare mnist") != 0) return EXIT_USAGE;
        const char *idx = opt(argc, argv, "--idx"), *out = opt(argc, argv, "--out");
        if (!idx || !out) {
            prepare_mnist_usage(stderr);
            return EXIT_USAGE;
        }
        char err[1024];
        int rc = prepare_mnist(idx, out, err, sizeof err);
        if (rc != PREPARE_OK) {
            fprintf(stderr, "dtrain prepare mnist: %s\n", err);
            /* bad idx files are the user's to fix (2); a failed write is a runtime error (1) */
            return rc == PREPARE_BAD_INPUT ? EXIT_USAGE : EXIT_RUNTIME;
        }
        printf("wrote %s\n", out);
        return EXIT_OK;
    }
    if (strcmp(argv[0], "text") == 0) return prepare_text_cmd(argc, argv);
    if (strcmp(argv[0], "bpe") == 0) return prepare_bpe_cmd(argc, argv);
    fprintf(stderr, "dtrain prepare: unknown dataset kind '%s' (expected: mnist, text, bpe)\n", argv[0]);
    return EXIT_USAGE;
}

/* `dtrain sample JOB ...` / `dtrain eval JOB ...`: the job's own entry point, argv[0] = JOB */
static int checkpoint_tool(const char *cmd, int argc, char **argv) {
    for (size_t i = 0; argc >= 1 && i < NJOBS; i++) {
        if (strcmp(argv[0], jobs[i]->name) != 0) continue;
        int (*entry)(int, char **) =
            strcmp(cmd, "sample") == 0 ? jobs[i]->sample_main : jobs[i]->eval_main;
        if (entry) return entry(argc, argv);
        fprintf(stderr, "dtrain %s: job '%s' has no %s command\n", cmd, argv[0], cmd);
        return EXIT_USAGE;
    }
    fprintf(stderr, "dtrain %s: expected a job name (dtrain %s JOB --ckpt PATH ...)\n", cmd, cmd);
    return EXIT_USAGE;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (strcmp(argv[1], "prepare") == 0) return prepare(argc - 2, argv + 2);
    if (strcmp(argv[1], "report") == 0) return report_main(argc - 2, argv + 2);
    if (strcmp(argv[1], "sample") == 0 || strcmp(argv[1], "eval") == 0)
        return checkpoint_tool(argv[1], argc - 2, argv + 2);
    for (size_t i = 0; i < NJOBS; i++)
        if (strcmp(argv[1], jobs[i]->name) == 0) return trainer_main(jobs[i], argc - 1, argv + 1);
    fprintf(stderr, "dtrain: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
