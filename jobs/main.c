/* dtrain: one binary, subcommands.
 *
 *   dtrain <job> [--config FILE] [--key value ...]     train a job (classify, ...)
 *   dtrain prepare mnist --idx DIR --out FILE.h5        convert raw data to HDF5
 */
#include <stdio.h>
#include <string.h>

#include "classify/classify.h"
#include "mnist_idx.h"
#include "trainer.h"

static const job *const jobs[] = {&classify_job};
#define NJOBS (sizeof jobs / sizeof jobs[0])

static void usage(FILE *f) {
    fprintf(f, "usage: dtrain <command> [options]\n\ntraining jobs (dtrain JOB --help for keys):\n");
    for (size_t i = 0; i < NJOBS; i++) fprintf(f, "  %-10s %s\n", jobs[i]->name, jobs[i]->description);
    fprintf(f, "\ndata:\n  prepare mnist --idx DIR --out FILE.h5   MNIST idx files (gzipped or not) -> HDF5\n");
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

static int prepare(int argc, char **argv) {
    if (argc < 1) {
        fprintf(stderr, "dtrain prepare: expected a dataset kind: mnist\n");
        return EXIT_USAGE;
    }
    if (strcmp(argv[0], "mnist") == 0) {
        static const char *const known[] = {"--idx", "--out", NULL};
        if (check_opts(argc - 1, argv + 1, known, "prepare mnist") != 0) return EXIT_USAGE;
        const char *idx = opt(argc, argv, "--idx"), *out = opt(argc, argv, "--out");
        if (!idx || !out) {
            fprintf(stderr, "usage: dtrain prepare mnist --idx DIR --out FILE.h5\n");
            return EXIT_USAGE;
        }
        char err[1024];
        if (prepare_mnist(idx, out, err, sizeof err) != 0) {
            fprintf(stderr, "dtrain prepare mnist: %s\n", err);
            return EXIT_RUNTIME;
        }
        printf("wrote %s\n", out);
        return EXIT_OK;
    }
    fprintf(stderr, "dtrain prepare: unknown dataset kind '%s' (expected: mnist)\n", argv[0]);
    return EXIT_USAGE;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (strcmp(argv[1], "prepare") == 0) return prepare(argc - 2, argv + 2);
    for (size_t i = 0; i < NJOBS; i++)
        if (strcmp(argv[1], jobs[i]->name) == 0) return trainer_main(jobs[i], argc - 1, argv + 1);
    fprintf(stderr, "dtrain: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
