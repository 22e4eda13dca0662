#define _GNU_SOURCE /* sched_getaffinity */
#include "trainer.h"

#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"
#include "util.h"

const cfg_spec trainer_keys[] = {
    {"out", CFG_STRING, "runs/run", NULL, "run directory: config.txt, metrics.jsonl, summary.json"},
    {"seed", CFG_INT, "0", "0..", "seed of every random stream (init, shuffling, dropout)"},
    {"epochs", CFG_INT, "5", "1..", "passes over the training set"},
    {"batch_size", CFG_INT, "64", "1..", "GLOBAL batch per optimizer step, split evenly over ranks"},
    {"optimizer", CFG_ENUM, "adam", "adam|adamw|sgd", "optimizer"},
    {"lr", CFG_FLOAT, "1e-3", "0..", "peak learning rate"},
    {"min_lr", CFG_FLOAT, "0", "0..", "final learning rate of the cosine schedule"},
    {"lr_schedule", CFG_ENUM, "constant", "constant|cosine", "learning-rate schedule after warm-up"},
    {"warmup_steps", CFG_INT, "0", "0..", "linear warm-up steps"},
    {"beta1", CFG_FLOAT, "0.9", "0..1", "Adam beta1"},
    {"beta2", CFG_FLOAT, "0.999", "0..1", "Adam beta2"},
    {"eps", CFG_FLOAT, "1e-8", "0..", "Adam epsilon"},
    {"weight_decay", CFG_FLOAT, "0", "0..", "weight decay (L2 for adam/sgd, decoupled for adamw)"},
    {"momentum", CFG_FLOAT, "0.9", "0..1", "SGD momentum"},
    {"grad_clip", CFG_FLOAT, "0", "0..", "clip gradients to this global L2 norm (0 = off)"},
    {"threads", CFG_INT, "0", "0..", "threads per rank (0 = cores on the node / ranks on the node)"},
    {"log_interval", CFG_INT, "0", "0..", "print a step line every N steps (0 = per epoch only)"},
    {NULL, 0, NULL, NULL, NULL},
};

void trainer_fail(trainer *t, int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    comm_abort(t ? t->comm : NULL, code, "%s", msg);
}

void trainer_log(trainer *t, const char *fmt, ...) {
    if (t->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* ---- set-up ------------------------------------------------------------------------- */

static void print_usage(const job *j, const config *c) {
    printf("usage: dtrain %s [--config FILE] [--key value ...]\n%s\n\nkeys:\n", j->name,
           j->description);
    config_print_help(c, stdout);
}

/* Config from defaults, then --config FILE, then --key value / --key=value.
 * Returns 0, or an exit code (usage printed for --help). */
static int parse_args(trainer *t, int argc, char **argv) {
    char err[1024];
    if (config_declare(&t->cfg, trainer_keys, err, sizeof err) != 0 ||
        config_declare(&t->cfg, t->job->keys, err, sizeof err) != 0) {
        fprintf(stderr, "dtrain: internal error: %s\n", err);
        return EXIT_RUNTIME;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            if (t->rank == 0) print_usage(t->job, &t->cfg);
            return -1;
        }
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                if (t->rank == 0) fprintf(stderr, "dtrain: --config needs a FILE\n");
                return EXIT_USAGE;
            }
            if (config_load_file(&t->cfg, argv[++i], err, sizeof err) != 0) {
                if (t->rank == 0) fprintf(stderr, "dtrain: %s\n", err);
                return EXIT_USAGE;
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            i++;
            continue;
        }
        const char *a = argv[i];
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

/* ranks x threads <= cores: the cores this process may run on, shared by the ranks of
 * the node. Open MPI binds each of 1-2 ranks to one core, which the affinity mask shows. */
static int auto_threads(const comm *c) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int per_rank = (int)(online > 0 ? online : 1) / comm_local_size(c);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int mine = CPU_COUNT(&set);
        if (mine < per_rank) per_rank = mine;
    }
    return per_rank < 1 ? 1 : per_rank;
}

static int open_run_dir(trainer *t) {
    snprintf(t->out_dir, sizeof t->out_dir, "%s", config_str(&t->cfg, "out"));
    int ok = 1;
    if (t->rank == 0) {
        char err[1024];
        char path[1100];
        if (mkdir_p(t->out_dir, err, sizeof err) != 0) {
            fprintf(stderr, "dtrain: %s\n", err);
            ok = 0;
        } else {
            char *text = config_to_string(&t->cfg);
            snprintf(path, sizeof path, "%s/config.txt", t->out_dir);
            if (write_file_atomic(path, text, strlen(text), err, sizeof err) != 0) {
                fprintf(stderr, "dtrain: %s\n", err);
                ok = 0;
            }
            free(text);
            snprintf(path, sizeof path, "%s/metrics.jsonl", t->out_dir);
            if (ok && !(t->metrics_file = fopen(path, "w"))) {
                fprintf(stderr, "dtrain: %s: cannot create\n", path);
                ok = 0;
            }
        }
    }
    comm_bcast(t->comm, &ok, sizeof ok, 0);
    return ok ? 0 : EXIT_RUNTIME;
}

static int setup_optimizer(trainer *t) {
    const config *c = &t->cfg;
    if (optim_init(&t->opt, config_str(c, "optimizer"), &t->model, (float)config_float(c, "beta1"),
                   (float)config_float(c, "beta2"), (float)config_float(c, "eps"),
                   (float)config_float(c, "weight_decay"), (float)config_float(c, "momentum")) != 0)
        trainer_fail(t, EXIT_USAGE, "unknown optimizer '%s'", config_str(c, "optimizer"));
    t->sched.kind = strcmp(config_str(c, "lr_schedule"), "cosine") == 0 ? LR_COSINE : LR_CONSTANT;
    t->sched.lr = config_float(c, "lr");
    t->sched.min_lr = config_float(c, "min_lr");
    t->sched.warmup = config_int(c, "warmup_steps");
    t->sched.total = t->total_steps;
    return 0;
}

int trainer_setup(trainer *t, const job *j, int argc, char **argv) {
    memset(t, 0, sizeof *t);
    t->job = j;
    t->comm = comm_init(&argc, &argv);
    t->rank = comm_rank(t->comm);
    t->world = comm_world(t->comm);
    int rc = parse_args(t, argc, argv);
    if (rc != 0) return rc;
    long threads = config_int(&t->cfg, "threads");
    t->threads = threads > 0 ? (int)threads : auto_threads(t->comm);
    kernels_set_threads(t->threads);
    long batch = config_int(&t->cfg, "batch_size");
    if (batch % t->world != 0) {
        if (t->rank == 0)
            fprintf(stderr,
                    "dtrain: bad value '%ld' for key 'batch_size': the global batch must be a "
                    "multiple of the number of ranks (%d)\n",
                    batch, t->world);
        return EXIT_USAGE;
    }
    if ((rc = open_run_dir(t)) != 0) return rc;
    rng_seed(&t->rng, (uint64_t)config_int(&t->cfg, "seed"), (uint64_t)t->rank);

    t->js = j->create(t);
    model_alloc(&t->model);
    if (t->rank == 0) {
        rng init;
        rng_seed(&init, (uint64_t)config_int(&t->cfg, "seed"), 0x1417ull << 32);
        j->init_params(t->js, t, &init);
    }
    comm_bcast(t->comm, t->model.params, t->model.nfloats * sizeof(float), 0);
    t->steps_per_epoch = j->steps_per_epoch(t->js, t);
    if (t->steps_per_epoch < 1)
        trainer_fail(t, EXIT_USAGE,
                     "batch_size %ld is larger than this rank's share of the training set",
                     batch);
    t->total_steps = t->steps_per_epoch * config_int(&t->cfg, "epochs");
    return setup_optimizer(t);
}

void trainer_teardown(trainer *t) {
    if (t->js && t->job->destroy) t->job->destroy(t->js);
    t->js = NULL;
    if (t->metrics_file) fclose(t->metrics_file);
    t->metrics_file = NULL;
    optim_free(&t->opt);
    if (t->model.params) model_free(&t->model);
    config_free(&t->cfg);
    comm_finalize(t->comm);
    t->comm = NULL;
}

/* ---- the loop ----------------------------------------------------------------------- */

void trainer_apply_gradients(trainer *t) {
    comm_allreduce_mean_f32(t->comm, t->model.grads, t->model.nfloats);
    t->grad_norm = clip_grad_norm(&t->model, config_float(&t->cfg, "grad_clip"));
    t->lr = lr_at(&t->sched, t->step);
    optim_step(&t->opt, &t->model, (float)t->lr);
    t->step++;
}

static void write_metrics_line(trainer *t, const metrics *m) {
    if (!t->metrics_file) return;
    metrics_write_json(m, t->metrics_file);
    fputc('\n', t->metrics_file);
    fflush(t->metrics_file);
}

static void log_step(trainer *t, float loss, double items_per_s, double t0, double now) {
    double eta = (now - t0) / (double)t->step * (double)(t->total_steps - t->step);
    trainer_log(t, "step %ld/%ld | loss %.4f | lr %.3e | %.0f %s/s | grad norm %.3f | eta %.0f s\n",
                t->step, t->total_steps, loss, t->lr, items_per_s, t->job->unit, t->grad_norm,
                eta);
}

/* One epoch of steps; returns the mean training loss over ranks and steps. */
static double train_epoch(trainer *t, double *train_time, double *items_out, double run_t0) {
    const job *j = t->job;
    long log_interval = config_int(&t->cfg, "log_interval");
    double loss_sum = 0, items = 0;
    double t0 = now_sec();
    j->start_epoch(t->js, t, t->epoch);
    for (long s = 0; s < t->steps_per_epoch; s++) {
        model_zero_grads(&t->model);
        long n = 0;
        float loss = j->forward_backward(t->js, t, s, &n);
        items += (double)n;
        loss_sum += loss;
        trainer_apply_gradients(t);
        if (log_interval > 0 && t->step % log_interval == 0) {
            double now = now_sec();
            log_step(t, loss, items * t->world / (now - t0), run_t0, now);
        }
    }
    *train_time = now_sec() - t0;
    double sums[2] = {loss_sum, items};
    comm_allreduce_sum_f64(t->comm, sums, 2);
    *items_out = sums[1];
    return sums[0] / ((double)t->steps_per_epoch * t->world);
}

static int write_summary(trainer *t) {
    if (t->rank != 0) return 0;
    char path[1100], err[1200];
    snprintf(path, sizeof path, "%s/summary.json", t->out_dir);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return -1;
    metrics_write_json(&t->summary, f);
    fputc('\n', f);
    fclose(f);
    int rc = write_file_atomic(path, buf, len, err, sizeof err);
    if (rc != 0) fprintf(stderr, "dtrain: %s\n", err);
    free(buf);
    return rc;
}

static void print_world(trainer *t) {
    trainer_log(t, "dtrain %s | %d rank%s on %d node%s | %d thread%s per rank | %zu parameters\n",
                t->job->name, t->world, t->world == 1 ? "" : "s", comm_nodes(t->comm),
                comm_nodes(t->comm) == 1 ? "" : "s", t->threads, t->threads == 1 ? "" : "s",
                t->model.nparams);
}

int trainer_main(const job *j, int argc, char **argv) {
    trainer *t = xcalloc(1, sizeof *t);
    int rc = trainer_setup(t, j, argc, argv);
    if (rc != 0) {
        trainer_teardown(t);
        free(t);
        return rc < 0 ? EXIT_OK : rc;
    }
    print_world(t);
    long epochs = config_int(&t->cfg, "epochs");
    double run_t0 = now_sec(), total_train_time = 0, total_items = 0;
    char per_s[64];
    snprintf(per_s, sizeof per_s, "%s_per_s", j->unit);
    metrics m = {0};
    for (t->epoch = 0; t->epoch < epochs; t->epoch++) {
        double train_time, items;
        double train_loss = train_epoch(t, &train_time, &items, run_t0);
        total_train_time += train_time;
        total_items += items;
        metrics_clear(&m);
        metrics_set(&m, "epoch", (double)(t->epoch + 1));
        metrics_set(&m, "step", (double)t->step);
        metrics_set(&m, "train_loss", train_loss);
        j->eval(t->js, t, &m);
        metrics_set(&m, per_s, items / train_time);
        metrics_set(&m, "lr", t->lr);
        metrics_set(&m, "epoch_time_s", train_time);
        write_metrics_line(t, &m);
        double test_loss = 0, test_acc = 0;
        metrics_get(&m, "test_loss", &test_loss);
        int has_acc = metrics_get(&m, "test_acc", &test_acc);
        trainer_log(t, "epoch %ld/%ld | train loss %.4f | test loss %.4f", t->epoch + 1, epochs,
                    train_loss, test_loss);
        if (has_acc) trainer_log(t, " | test acc %.2f%%", 100.0 * test_acc);
        trainer_log(t, " | %.0f %s/s | %.2f s\n", items / train_time, j->unit, train_time);
    }
    /* the summary repeats the last epoch's figures, then run-wide ones */
    for (int i = 0; i < m.n; i++) {
        if (m.kv[i].is_str) metrics_set_str(&t->summary, m.kv[i].key, m.kv[i].str);
        else metrics_set(&t->summary, m.kv[i].key, m.kv[i].num);
    }
    metrics_set_str(&t->summary, "job", j->name);
    metrics_set(&t->summary, "epochs", (double)epochs);
    metrics_set(&t->summary, "steps", (double)t->step);
    metrics_set(&t->summary, per_s, total_items / total_train_time);
    metrics_set(&t->summary, "params", (double)t->model.nparams);
    metrics_set(&t->summary, "world_size", (double)t->world);
    metrics_set(&t->summary, "threads_per_rank", (double)t->threads);
    metrics_set(&t->summary, "train_time_s", total_train_time);
    metrics_set(&t->summary, "wall_time_s", now_sec() - run_t0);
    j->finish(t->js, t, &t->summary);
    rc = write_summary(t) == 0 ? EXIT_OK : EXIT_RUNTIME;
    trainer_teardown(t);
    free(t);
    return rc;
}
