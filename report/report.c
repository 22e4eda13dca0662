/* report.c: `dtrain report RUN_DIR... --out DIR [options]`: reads the runs, measures their
 * outputs, draws the pictures and writes DIR/report.md and DIR/report.json. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "comm.h"
#include "report.h"
#include "trainer.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f, "usage: dtrain report RUN_DIR... --out DIR [options]\n\n"
               "Puts runs of classify, gpt and diffusion side by side: DIR/report.md (a table, one column per\n"
               "run, real outputs, pictures) and DIR/report.json (every figure). The run directories are only read.\n\n"
               "options:\n"
               "  --out DIR        where the report goes (made if missing; not inside a run directory)\n"
               "  --judge CKPT     LeNet checkpoint that judges diffusion samples (default: the first finished\n"
               "                   LeNet classify run among RUN_DIR)\n"
               "  --prompt TEXT    GPT prompt (default \"ROMEO:\")\n"
               "  --tokens N       GPT sample length (default 300)\n"
               "  --seeds N        seeds drawn to measure how generators' outputs vary (default 8)\n"
               "  --per-label N    diffusion samples per digit for the judge (default 100)\n"
               "  --steps S        diffusion DDIM steps (default 50)\n"
               "  --guidance W     diffusion classifier-free guidance (default 2)\n"
               "  --help           print this help and exit\n");
}

static int int_opt(const char *name, const char *v, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "dtrain report: bad value '%s' for %s: expected an integer in %d..%d\n", v, name, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* options into opt, run directories into dirs; 0, 1 for --help, or -1 */
static int parse(int argc, char **argv, report_opts *opt, const char **dirs, int *ndirs) {
    *opt = (report_opts){.prompt = "ROMEO:", .seeds = 8, .per_label = 100, .steps = 50, .tokens = 300, .guidance = 2};
    *ndirs = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
        if (strncmp(a, "--", 2) != 0) {
            dirs[(*ndirs)++] = a;
            continue;
        }
        if (i + 1 >= argc) return fprintf(stderr, "dtrain report: missing value for '%s'\n", a), -1;
        const char *v = argv[++i];
        int rc = 0;
        if (strcmp(a, "--out") == 0) opt->out = v;
        else if (strcmp(a, "--judge") == 0) opt->judge = v;
        else if (strcmp(a, "--prompt") == 0) opt->prompt = v;
        else if (strcmp(a, "--tokens") == 0) rc = int_opt(a, v, 1, 100000, &opt->tokens);
        else if (strcmp(a, "--seeds") == 0) rc = int_opt(a, v, 2, 1000, &opt->seeds);
        else if (strcmp(a, "--per-label") == 0) rc = int_opt(a, v, 1, 100000, &opt->per_label);
        else if (strcmp(a, "--steps") == 0) rc = int_opt(a, v, 1, 100000, &opt->steps);
        else if (strcmp(a, "--guidance") == 0) {
            char *end;
            opt->guidance = strtod(v, &end);
            if (end == v || *end || !(opt->guidance >= 0 && opt->guidance <= 100))
                rc = -1, fprintf(stderr, "dtrain report: bad value '%s' for --guidance: expected 0..100\n", v);
        } else return fprintf(stderr, "dtrain report: unknown option '%s'\n", a), -1;
        if (rc) return -1;
    }
    if (!opt->out) return fprintf(stderr, "dtrain report: --out DIR is required\n"), -1;
    if (*ndirs == 0) return fprintf(stderr, "dtrain report: expected at least one run directory\n"), -1;
    return 0;
}

/* 1 when path (which may not exist yet) lies inside dir */
static int inside(const char *path, const char *dir) {
    char rd[PATH_MAX], rp[PATH_MAX], parent[PATH_MAX];
    if (!realpath(dir, rd)) return 0;
    snprintf(parent, sizeof parent, "%s", path);
    while (!realpath(parent, rp)) { /* climb to the nearest existing ancestor */
        char *slash = strrchr(parent, '/');
        if (!slash || slash == parent) {
            if (!getcwd(rp, sizeof rp)) return 0;
            break;
        }
        *slash = 0;
    }
    size_t n = strlen(rd);
    return strncmp(rp, rd, n) == 0 && (rp[n] == '/' || rp[n] == 0);
}

static int make_dir(const char *path) {
    if (mkdir(path, 0755) == 0 || errno == EEXIST) return 0;
    fprintf(stderr, "dtrain report: %s: cannot create: %s\n", path, strerror(errno));
    return -1;
}

/* the runs that read, each name unique; messages for the others */
static int read_runs(const char **dirs, int ndirs, const char *out, run_files **runs) {
    int n = 0;
    for (int i = 0; i < ndirs; i++) {
        char why[2 * REPORT_PATH], ri[PATH_MAX], rj[PATH_MAX];
        int dup = 0;
        for (int j = 0; j < n && !dup; j++)
            dup = realpath(dirs[i], ri) && realpath(runs[j]->dir, rj) && strcmp(ri, rj) == 0;
        if (dup) {
            fprintf(stderr, "dtrain report: %s: given twice; reported once\n", dirs[i]);
            continue;
        }
        if (inside(out, dirs[i])) {
            fprintf(stderr, "dtrain report: --out %s lies inside the run directory %s, which the report never writes "
                            "into\n", out, dirs[i]);
            return -1;
        }
        run_files *r = xcalloc(1, sizeof *r);
        if (run_read(r, dirs[i], why, sizeof why) != 0) {
            fprintf(stderr, "dtrain report: %s; left out\n", why);
            free(r);
            continue;
        }
        for (int j = 0, k = 2; j < n; j++)
            if (strcmp(runs[j]->name, r->name) == 0) {
                char base[101];
                snprintf(base, sizeof base, "%.100s", r->name);
                snprintf(r->name, sizeof r->name, "%s-%d", base, k++), j = -1;
            }
        runs[n++] = r;
    }
    return n;
}

/* a LeNet judge: --judge, else the first finished LeNet classify run's checkpoint */
static const char *pick_judge(run_files *const *runs, int n, const report_opts *opt) {
    if (opt->judge) return opt->judge;
    for (int i = 0; i < n; i++)
        if (strcmp(runs[i]->job, "classify") == 0 && strcmp(run_cfg(runs[i], "model"), "lenet") == 0 &&
            runs[i]->summary && *runs[i]->ckpt)
            return runs[i]->ckpt;
    return NULL;
}

/* can outputs be drawn from this run? one message when not */
static int usable(const run_files *r) {
    if (!r->summary) {
        fprintf(stderr, "dtrain report: %s: no summary.json (still running, or stopped before the end): its curves "
                        "are reported, its final figures and outputs are not\n", r->dir);
        return 0;
    }
    if (!*r->ckpt) {
        fprintf(stderr, "dtrain report: %s: no checkpoint (checkpoints/latest names no file): no output, evaluation "
                        "or predictability measured from it\n", r->dir);
        return 0;
    }
    return 1;
}

static void measure(run_files *const *runs, run_outputs *const *outs, int n, const report_opts *opt,
                    const char *work) {
    const char *judge = pick_judge(runs, n, opt);
    int *ok = xcalloc((size_t)n, sizeof *ok);
    for (int i = 0; i < n; i++) {
        flops_estimate(runs[i], outs[i]);
        outs[i]->repeat_same = -1;
        ok[i] = usable(runs[i]);
        if (ok[i] && strcmp(runs[i]->job, "gpt") == 0) outputs_gpt(runs[i], outs[i], opt, work);
        if (ok[i] && strcmp(runs[i]->job, "diffusion") == 0) outputs_diffusion(runs[i], outs[i], opt, work, judge);
    }
    /* in-process after every child: the MPI library is not to be forked once it is up; one
     * communicator held across the runs, since MPI ends with the last one and cannot restart */
    comm *held = NULL;
    for (int i = 0; i < n; i++) {
        if (!ok[i] || strcmp(runs[i]->job, "classify") != 0) continue;
        if (!held) {
            int argc = 0;
            char **argv = NULL;
            held = comm_init(&argc, &argv);
        }
        outputs_classify(runs[i], outs[i]);
    }
    if (held) comm_finalize(held);
    free(ok);
}

/* the command as typed, arguments with spaces quoted */
static char *command_line(int argc, char **argv) {
    size_t len = 16;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 3;
    char *s = xmalloc(len);
    strcpy(s, "dtrain report");
    for (int i = 0; i < argc; i++) {
        int quote = strchr(argv[i], ' ') != NULL;
        strcat(s, quote ? " '" : " ");
        strcat(s, argv[i]);
        if (quote) strcat(s, "'");
    }
    return s;
}

static int write_report(run_files **runs, run_outputs **outs, int n, const report_opts *opt, const char *cmd) {
    int rc = 0;
    json_t **figs = xcalloc((size_t)n, sizeof *figs);
    for (int i = 0; i < n; i++) {
        rc |= figures_run(runs[i], outs[i], opt->out);
        figs[i] = figures_json(runs[i], outs[i]);
    }
    rc |= figures_overlay(runs, outs, n, opt->out, "loss-vs-compute.png");
    spread_add(runs, figs, n);
    rc |= table_write(figs, n, opt->out, "loss-vs-compute.png", cmd);
    for (int i = 0; i < n; i++) json_decref(figs[i]);
    free(figs);
    return rc;
}

int report_main(int argc, char **argv) {
    report_opts opt;
    const char **dirs = xcalloc((size_t)argc + 1, sizeof *dirs);
    int ndirs, rc = parse(argc, argv, &opt, dirs, &ndirs);
    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        free(dirs);
        return rc > 0 ? EXIT_OK : EXIT_USAGE;
    }
    run_files **runs = xcalloc((size_t)ndirs, sizeof *runs);
    run_outputs **outs = xcalloc((size_t)ndirs, sizeof *outs);
    char work[REPORT_PATH + 8];
    snprintf(work, sizeof work, "%s/work", opt.out);
    int n = read_runs(dirs, ndirs, opt.out, runs);
    if (n <= 0) {
        if (n == 0) fprintf(stderr, "dtrain report: none of the %d director%s is a run: no report\n", ndirs,
                            ndirs == 1 ? "y" : "ies");
        rc = EXIT_USAGE;
    } else if (make_dir(opt.out) != 0 || make_dir(work) != 0) rc = EXIT_RUNTIME;
    else {
        for (int i = 0; i < n; i++) outs[i] = xcalloc(1, sizeof *outs[i]);
        measure(runs, outs, n, &opt, work);
        char *cmd = command_line(argc, argv);
        rc = write_report(runs, outs, n, &opt, cmd) == 0 ? EXIT_OK : EXIT_RUNTIME;
        free(cmd);
        if (rc == EXIT_OK) printf("wrote %s/report.md and %s/report.json (%d run%s)\n", opt.out, opt.out, n,
                                  n == 1 ? "" : "s");
    }
    for (int i = 0; i < ndirs; i++) {
        if (runs[i]) run_free(runs[i]);
        if (outs[i]) free(outs[i]->sample_text), json_decref(outs[i]->judge);
        free(runs[i]), free(outs[i]);
    }
    free(runs), free(outs), free(dirs);
    return rc;
}
