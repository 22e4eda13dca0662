/* config_cli.c: the config of a run: the keys every job has, then defaults → job defaults →
 * --config FILE → --key value, and the checks between keys that one key's range cannot
 * express. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer_internal.h"

const cfg_spec trainer_keys[] = {
    {"out", CFG_STRING, "runs/run", NULL, "run directory: config.txt, metrics.jsonl, summary.json, checkpoints/"},
    {"seed", CFG_INT, "0", "0..9223372036854775807", "seed of every random stream (init, shuffling, sampling)"},
    {"epochs", CFG_INT, "5", "1..", "passes over the training set (when max_steps = 0)"},
    {"max_steps", CFG_INT, "0", "0..", "stop after this many optimizer steps (0 = run `epochs` epochs)"},
    {"batch_size", CFG_INT, "64", "1..", "GLOBAL batch per micro-step, split evenly over ranks"},
    {"grad_accum", CFG_INT, "1", "1..", "micro-batches accumulated per optimizer step"},
    {"optimizer", CFG_ENUM, "adam", "adam|adamw|sgd", "optimizer"},
    {"lr", CFG_FLOAT, "1e-3", "0..", "peak learning rate"},
    {"min_lr", CFG_FLOAT, "0", "0..", "final learning rate of the cosine schedule"},
    {"lr_schedule", CFG_ENUM, "constant", "constant|cosine", "learning-rate schedule after warm-up"},
    {"warmup_steps", CFG_INT, "0", "0..", "linear warm-up steps"},
    {"beta1", CFG_FLOAT, "0.9", "0..<1", "Adam beta1"},
    {"beta2", CFG_FLOAT, "0.999", "0..<1", "Adam beta2"},
    {"eps", CFG_FLOAT, "1e-8", "0..", "Adam epsilon"},
    {"weight_decay", CFG_FLOAT, "0", "0..", "weight decay on weight matrices/filters (L2 for adam/sgd, decoupled for adamw)"},
    {"momentum", CFG_FLOAT, "0.9", "0..1", "SGD momentum"},
    {"grad_clip", CFG_FLOAT, "0", "0..", "clip gradients to this global L2 norm (0 = off)"},
    {"threads", CFG_INT, "0", "0..1024", "threads per rank (0 = cores on the node / ranks on the node); on cuda, host threads for data loading only"},
    {"device", CFG_ENUM, "auto", "auto|cpu|cuda", "where the ops run: cpu, cuda (one GPU per rank), or auto (cuda when this build has CUDA and a GPU is visible, else cpu)"},
    {"gpu", CFG_INT, "-1", "-1..1023", "GPU of this rank on cuda (-1 = its local rank: OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, else MPI's count; GPU 0 when one GPU is visible)"},
    {"tf32", CFG_INT, "0", "0..1", "TF32 tensor cores for the GEMMs on cuda (1: faster, ~1e-3 relative error; 0: fp32)"},
    {"log_interval", CFG_INT, "0", "0..", "print and record a step line every N steps (0 = off)"},
    {"eval_interval", CFG_INT, "0", "0..", "evaluate every N steps (0 = at the end of each epoch)"},
    {"ckpt_interval", CFG_INT, "0", "0..", "checkpoint every N steps (0 = at the end of each epoch)"},
    {"ckpt_keep", CFG_INT, "3", "0..", "checkpoints kept (0 = all)"},
    {"ckpt_dir", CFG_STRING, "", NULL, "checkpoint directory (empty = OUT/checkpoints)"},
    {"resume", CFG_STRING, "none", NULL, "none, auto (newest valid checkpoint in OUT/checkpoints), or a checkpoint path"},
    {"comm_timeout", CFG_FLOAT, "30", "0..", "seconds a gradient all-reduce may take before the job ends naming the ranks that stopped answering (0 = wait forever)"},
    {NULL, 0, NULL, NULL, NULL},
};

static void print_usage(const job *j, const config *c) {
    printf("usage: dtrain %s [--config FILE] [--key value ...]\n%s\n\nkeys:\n", j->name,
           j->description);
    config_print_help(c, stdout);
}

int trainer_declare_keys(trainer *t) {
    char err[1024];
    if (config_declare(&t->cfg, trainer_keys, err, sizeof err) != 0 ||
        config_declare(&t->cfg, t->job->keys, err, sizeof err) != 0) {
        fprintf(stderr, "dtrain: internal error: %s\n", err);
        return EXIT_RUNTIME;
    }
    return 0;
}


/* --key value and --key=value pairs (after --config FILE is applied). */
int trainer_apply_cli(trainer *t, int argc, char **argv) {
    char err[1024];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (t->rank == 0)
                fprintf(stderr, "dtrain: unexpected argument '%s' (expected --key value)\n", a);
            return EXIT_USAGE;
        }
        char key[128];
        const char *val;
        const char *eq = strchr(a, '=');
        if (eq) {
            snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
            val = eq + 1;
        } else {
            if (i + 1 >= argc) {
                if (t->rank == 0) fprintf(stderr, "dtrain: --%s needs a value\n", a + 2);
                return EXIT_USAGE;
            }
            snprintf(key, sizeof key, "%s", a + 2);
            val = argv[++i];
        }
        if (config_set(&t->cfg, key, val, "cli", err, sizeof err) != 0) {
            if (t->rank == 0) fprintf(stderr, "dtrain: %s\n", err);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* defaults → job defaults → --config FILE → --key value. 0, an exit code, or -1 (--help). */
int trainer_parse_args(trainer *t, int argc, char **argv) {
    char err[1024];
    int rc = trainer_declare_keys(t);
    if (rc != 0) return rc;
    if (t->job->defaults && config_apply_text(&t->cfg, t->job->defaults, "job", err, sizeof err) != 0) {
        fprintf(stderr, "dtrain: internal error in %s's defaults: %s\n", t->job->name, err);
        return EXIT_RUNTIME;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            if (t->rank == 0) print_usage(t->job, &t->cfg);
            return -1;
        }
        if (strcmp(argv[i], "--config") != 0) continue;
        if (i + 1 >= argc) {
            if (t->rank == 0) fprintf(stderr, "dtrain: --config needs a FILE\n");
            return EXIT_USAGE;
        }
        if (config_load_file(&t->cfg, argv[++i], err, sizeof err) != 0) {
            if (t->rank == 0) fprintf(stderr, "dtrain: %s\n", err);
            return EXIT_USAGE;
        }
    }
    return trainer_apply_cli(t, argc, argv);
}

/* Checks between keys, and of paths, that a key's own range cannot express. */
int trainer_check_keys(trainer *t) {
    const config *c = &t->cfg;
    char msg[512] = "";
    long batch = config_int(c, "batch_size");
    if (batch % t->world != 0)
        snprintf(msg, sizeof msg, "bad value '%ld' for key 'batch_size': the global batch must be a multiple "
                 "of the number of ranks (%d)", batch, t->world);
    else if (strcmp(config_str(c, "lr_schedule"), "cosine") == 0 && config_float(c, "min_lr") > config_float(c, "lr"))
        snprintf(msg, sizeof msg, "bad value '%s' for key 'min_lr': the cosine schedule decays from lr (%s) down "
                 "to min_lr, so min_lr must be at most lr", config_str(c, "min_lr"), config_str(c, "lr"));
    else if (!config_str(c, "out")[0])
        snprintf(msg, sizeof msg, "bad value '' for key 'out': expected a run directory path");
    else if (config_has(c, "data") && !config_str(c, "data")[0])
        snprintf(msg, sizeof msg, "bad value '' for key 'data': expected the path of an HDF5 file");
    if (!msg[0]) return 0;
    if (t->rank == 0) fprintf(stderr, "dtrain: %s\n", msg);
    return EXIT_USAGE;
}
