/* trainer_internal.h: how the trainer's files call each other (not for jobs).
 *
 *   trainer.c      the step loop: setup, run_loop, train_step
 *   config_cli.c   the config from defaults, job defaults, --config FILE and --key value
 *   run_dir.c      the run directory: config.txt, metrics.jsonl, summary.json
 *   resume.c       resume policy: which checkpoint, restoring from it, config-change warnings
 *   train_state.c  the checkpoint contract: what a checkpoint holds, written and read by one table
 *   messages.c     errors and progress lines every rank agrees on */
#ifndef DTRAIN_TRAINER_INTERNAL_H
#define DTRAIN_TRAINER_INTERNAL_H

#include "checkpoint.h"
#include "trainer.h"

/* The run's timings and counters, kept by the loop, reported in metrics and summary.json. */
typedef struct clock_state {
    double t0;            /* start of the run */
    double train_time;    /* seconds inside steps, summed over the run */
    double items;         /* units processed by all ranks over the run */
    double epoch_time;    /* seconds inside steps in this epoch */
    double log_time, log_items; /* since the last step line */
    long last_eval_step, last_ckpt_step;
    char per_s[64];
} clock_state;

/* config_cli.c: defaults → job defaults → --config FILE → --key value; then the checks
 * between keys. 0, an exit code, or -1 (--help). */
int trainer_declare_keys(trainer *t);
int trainer_parse_args(trainer *t, int argc, char **argv);
int trainer_apply_cli(trainer *t, int argc, char **argv);
int trainer_check_keys(trainer *t);

/* run_dir.c */
int run_dir_check_fresh_start(trainer *t);
int run_dir_open(trainer *t, long resumed_step);
void run_dir_write_metrics(trainer *t, const metrics *m);
int run_dir_write_summary(trainer *t, const clock_state *cs);
int run_dir_complete(trainer *t);

/* resume.c: picks and loads the checkpoint --resume asks for. Returns the resumed step, -1
 * for a fresh start, or -2 - exit code on failure. */
long resume_maybe(trainer *t);

/* messages.c */
void trainer_print_world(trainer *t);

/* trainer.c: threads per rank when `threads = 0` */
int trainer_auto_threads(const comm *c);

#endif
