/* report.h: `dtrain report RUN_DIR... --out DIR`: the runs of any mix of jobs side by side.
 *
 * The report only reads the run directories (config.txt, metrics.jsonl, summary.json,
 * checkpoints/) and never writes into them. It reaches the jobs through their stable entry
 * points: the `dtrain sample` and `dtrain eval` commands (run as child processes of this
 * binary, their output in DIR/work/) and, for the classifier's predictions,
 * trainer_load_for_inference + classify_logits (the functions the diffusion judge uses). */
#ifndef DTRAIN_REPORT_H
#define DTRAIN_REPORT_H

#include <jansson.h>
#include <stddef.h>

#define REPORT_PATH 1024

/* A curve: points (x[i], y[i]), growing. */
typedef struct series {
    double *x, *y;
    int n, cap;
} series;

void series_add(series *s, double x, double y);
void series_free(series *s);

/* What the run's own files say. */
typedef struct run_files {
    char dir[REPORT_PATH];
    char name[128];        /* the directory's last component, made unique across runs */
    char job[32];          /* from summary.json, else the checkpoint, else the config's keys */
    json_t *config;        /* config.txt as an object of strings */
    json_t *summary;       /* summary.json, NULL when the run has not finished */
    char ckpt[REPORT_PATH]; /* the checkpoint `latest` names, "" when none */
    series train_loss;     /* step -> training loss (step lines, else epoch means) */
    series eval_loss;      /* step -> validation/test loss */
    series eval_acc;       /* step -> test accuracy (classify) */
    series throughput;     /* step -> images/s or tokens/s over the logged interval */
    series time_at;        /* step -> cumulative training time (s), from the logged timings */
} run_files;

/* Reads DIR; 0, or -1 with a one-line reason in why (the directory is not a run). A run
 * that lacks summary.json or checkpoints still loads (the caller says so and reports the
 * rest). */
int run_read(run_files *r, const char *dir, char *why, size_t whylen);
void run_free(run_files *r);
const char *run_cfg(const run_files *r, const char *key); /* "" when absent */
double run_num(const run_files *r, const char *key, int *found); /* summary.json number */
/* cumulative training time at `step`, interpolated; -1 when the run logged no timings */
double run_time_at(const run_files *r, double step);

/* The real outputs and measurements the report adds to a run. */
typedef struct run_outputs {
    /* classify */
    long confusion[10][10];
    int has_confusion;
    long pred_total, pred_same;      /* test images predicted twice; how many got the same label */
    /* gpt */
    char *sample_text;               /* dtrain sample gpt's output, malloc'd */
    char prompt[128];
    long sample_seed;
    int gen_seeds, gen_distinct;     /* outputs over that many seeds; how many distinct */
    int repeat_same;                 /* 1: one seed twice gave the same output; -1 not measured */
    double pixel_diff;               /* diffusion: mean |difference| between two seeds' images, 0..255 */
    /* diffusion */
    char grid_png[REPORT_PATH];      /* relative to the report directory */
    json_t *judge;                   /* dtrain eval diffusion's JSON, NULL when not evaluated */
    /* every job */
    double flops_per_example, flops_per_step;
    long examples_per_step;          /* images, or token positions, per optimizer step */
    double train_set;                /* images or tokens in the training split, <= 0 unknown */
    /* plots, relative to the report directory */
    char loss_png[192], throughput_png[192], confusion_png[192];
} run_outputs;

typedef struct report_opts {
    const char *out, *judge, *prompt;
    int seeds;          /* generator outputs drawn for the predictability row */
    int per_label;      /* diffusion eval samples per digit */
    int steps;          /* diffusion DDIM steps */
    int tokens;         /* GPT sample length */
    double guidance;
} report_opts;

/* FLOPs of one training example (forward + backward, multiply-adds counted as 2), from the
 * run's config and parameter count; 0 when the job is unknown. Sets per_step too. */
void flops_estimate(const run_files *r, run_outputs *o);

/* Child process: this binary with args, stdout to out_path; returns its exit status and
 * the first line of its stderr in why. */
int run_dtrain(char *const args[], const char *out_path, char *why, size_t whylen);

/* The outputs of each job (outputs_*.c); messages go to stderr as one line each. */
void outputs_gpt(const run_files *r, run_outputs *o, const report_opts *opt, const char *work);
void outputs_diffusion(const run_files *r, run_outputs *o, const report_opts *opt, const char *work,
                       const char *judge_ckpt);
/* in-process; call after every child process has run (it initialises MPI) */
void outputs_classify(const run_files *r, run_outputs *o);

/* Pictures (figures.c) and the tables (table.c). */
int figures_run(const run_files *r, run_outputs *o, const char *outdir);
int figures_overlay(run_files *const *r, run_outputs *const *o, int n, const char *outdir, const char *name);
/* every figure of one run as a JSON object (figures_json.c) */
json_t *figures_json(const run_files *r, const run_outputs *o);
/* adds "spread" to each run's object: the final metric over the runs of one job and config
 * that differ only in seed (spread.c); messages for runs of one job that cannot be pooled */
void spread_add(run_files *const *r, json_t *const *figs, int n);
/* DIR/report.md and DIR/report.json from the runs' objects (table.c) */
int table_write(json_t *const *figs, int n, const char *outdir, const char *overlay_png, const char *command);

int report_main(int argc, char **argv);

#endif
