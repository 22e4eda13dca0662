#define _GNU_SOURCE /* sched_getaffinity */
#include "trainer.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "kernels.h"
#include "util.h"

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
    {"threads", CFG_INT, "0", "0..1024", "threads per rank (0 = cores on the node / ranks on the node)"},
    {"log_interval", CFG_INT, "0", "0..", "print and record a step line every N steps (0 = off)"},
    {"eval_interval", CFG_INT, "0", "0..", "evaluate every N steps (0 = at the end of each epoch)"},
    {"ckpt_interval", CFG_INT, "0", "0..", "checkpoint every N steps (0 = at the end of each epoch)"},
    {"ckpt_keep", CFG_INT, "3", "0..", "checkpoints kept (0 = all)"},
    {"ckpt_dir", CFG_STRING, "", NULL, "checkpoint directory (empty = OUT/checkpoints)"},
    {"resume", CFG_STRING, "none", NULL, "none, auto (newest valid checkpoint in OUT/checkpoints), or a checkpoint path"},
    {"comm_timeout", CFG_FLOAT, "30", "0..", "seconds a gradient all-reduce may take before the job ends naming the ranks that stopped answering (0 = wait forever)"},
    {NULL, 0, NULL, NULL, NULL},
};

/* Set by the signal handler, read at step boundaries: the only thing a handler may do. */
static volatile sig_atomic_t g_stop_signal;

static void on_stop_signal(int sig) { g_stop_signal = sig; }

void trainer_fail(trainer *t, int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    comm_abort(t ? t->comm : NULL, code, "%s", msg);
}

void trainer_check(trainer *t, int failed, int code, const char *fmt, ...) {
    char msg[1024] = "";
    if (failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    if (!t || !t->comm || t->world == 1) {
        if (failed) trainer_fail(t, code, "%s", msg);
        return;
    }
    /* the max picks the lowest failing rank, and its exit code with it (codes are < 256) */
    int32_t v = failed ? (t->world - t->rank) * 256 + (code & 255) : 0;
    comm_allreduce_max_i32(t->comm, &v, 1);
    if (v == 0) return;
    if (t->rank == t->world - v / 256) {
        fprintf(stderr, "dtrain: rank %d/%d: %s\n", t->rank, t->world, msg);
        fflush(stderr);
    }
    comm_finalize(t->comm);
    exit(v % 256);
}

void trainer_log(trainer *t, const char *fmt, ...) {
    if (t->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* ---- configuration ------------------------------------------------------------------ */

static void print_usage(const job *j, const config *c) {
    printf("usage: dtrain %s [--config FILE] [--key value ...]\n%s\n\nkeys:\n", j->name,
           j->description);
    config_print_help(c, stdout);
}

static int declare_keys(trainer *t) {
    char err[1024];
    if (config_declare(&t->cfg, trainer_keys, err, sizeof err) != 0 ||
        config_declare(&t->cfg, t->job->keys, err, sizeof err) != 0) {
        fprintf(stderr, "dtrain: internal error: %s\n", err);
        return EXIT_RUNTIME;
    }
    return 0;
}

/* `key = value` lines from a string (job defaults, a checkpoint's config). */
static int apply_text(config *c, const char *text, const char *source, char *err, size_t errlen) {
    char *copy = xstrdup(text), *save = NULL;
    int rc = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#') continue;
        char *k = line, *v = eq + 1;
        *eq = '\0';
        while (*k == ' ') k++;
        for (char *e = eq - 1; e >= k && *e == ' '; e--) *e = '\0';
        while (*v == ' ') v++;
        for (char *e = v + strlen(v) - 1; e >= v && (*e == ' ' || *e == '\r'); e--) *e = '\0';
        if (config_set(c, k, v, source, err, errlen) != 0) {
            rc = -1;
            break;
        }
    }
    free(copy);
    return rc;
}

/* --key value and --key=value pairs (after --config FILE is applied). */
static int apply_cli(trainer *t, int argc, char **argv) {
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
static int parse_args(trainer *t, int argc, char **argv) {
    char err[1024];
    int rc = declare_keys(t);
    if (rc != 0) return rc;
    if (t->job->defaults && apply_text(&t->cfg, t->job->defaults, "job", err, sizeof err) != 0) {
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
    return apply_cli(t, argc, argv);
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

/* ---- run directory and metrics ------------------------------------------------------ */

/* On resume, metrics.jsonl keeps only the lines up to the checkpoint's step: the lines a
 * killed run wrote after it are written again, identically, by the resumed run. */
static void trim_metrics(const char *path, long max_step) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *kept = NULL, line[8192];
    size_t len = 0;
    FILE *out = open_memstream(&kept, &len);
    while (fgets(line, sizeof line, f)) {
        const char *s = strstr(line, "\"step\": ");
        if (s && atol(s + 8) <= max_step) fputs(line, out);
    }
    fclose(f);
    fclose(out);
    char err[256];
    if (write_file_atomic(path, kept, len, err, sizeof err) != 0) fprintf(stderr, "dtrain: %s\n", err);
    free(kept);
}

/* Whether checkpoints can be written to DIR: made if missing, then a file created and
 * removed in it. Checked at the start, so that a wrong --ckpt_dir stops the run before its
 * first hour of training rather than at its first checkpoint. */
static int check_ckpt_dir(const char *dir) {
    char err[1024], probe[1200];
    if (mkdir_p(dir, err, sizeof err) != 0) {
        fprintf(stderr, "dtrain: %s\n", err);
        return -1;
    }
    snprintf(probe, sizeof probe, "%s/.dtrain-probe.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        fprintf(stderr, "dtrain: %s: cannot write checkpoints there: %s\n", dir, strerror(errno));
        return -1;
    }
    close(fd);
    unlink(probe);
    return 0;
}

static int open_run_dir(trainer *t, long resumed_step) {
    int ok = 1;
    if (t->rank == 0) {
        char err[1024], path[1100];
        if (mkdir_p(t->out_dir, err, sizeof err) != 0) {
            fprintf(stderr, "dtrain: %s\n", err);
            ok = 0;
        } else if (check_ckpt_dir(t->ckpt_dir) != 0) {
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
            if (resumed_step >= 0) trim_metrics(path, resumed_step);
            if (ok && !(t->metrics_file = fopen(path, resumed_step >= 0 ? "a" : "w"))) {
                fprintf(stderr, "dtrain: %s: cannot create\n", path);
                ok = 0;
            }
        }
    }
    comm_bcast(t->comm, &ok, sizeof ok, 0);
    return ok ? 0 : EXIT_RUNTIME;
}

static void write_metrics_line(trainer *t, const metrics *m) {
    t->last = *m;
    if (!t->metrics_file) return;
    metrics_write_json(m, t->metrics_file);
    fputc('\n', t->metrics_file);
    fflush(t->metrics_file);
}

/* ---- optimizer and checkpoint tensors ---------------------------------------------- */

static void setup_optimizer(trainer *t) {
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
}

float *trainer_add_buffer(trainer *t, const char *group) {
    if (t->nbuffers == (int)(sizeof t->buffers / sizeof t->buffers[0]))
        trainer_fail(t, EXIT_RUNTIME, "too many extra buffers (adding '%s')", group);
    snprintf(t->buffers[t->nbuffers].group, sizeof t->buffers[0].group, "%s", group);
    t->buffers[t->nbuffers].data = kernels_alloc(t->model.nfloats);
    return t->buffers[t->nbuffers++].data;
}

/* Every buffer a checkpoint holds: the parameters, each optimizer state and the job's extra
 * buffers, one group each. */
static ckpt_tensor *state_tensors(trainer *t, int *n) {
    const model *m = &t->model;
    const char *gname[8] = {"params"};
    float *base[8] = {m->params};
    int groups = 1;
    if (t->opt.m) gname[groups] = t->opt.kind == OPT_SGD ? "momentum" : "adam_m", base[groups++] = t->opt.m;
    if (t->opt.v) gname[groups] = "adam_v", base[groups++] = t->opt.v;
    for (int b = 0; b < t->nbuffers; b++) gname[groups] = t->buffers[b].group, base[groups++] = t->buffers[b].data;
    ckpt_tensor *ts = xcalloc((size_t)(groups * m->ntensors), sizeof *ts);
    int k = 0;
    for (int g = 0; g < groups; g++)
        for (int i = 0; i < m->ntensors; i++) {
            const tensor_info *ti = &m->tensors[i];
            ts[k].group = gname[g];
            ts[k].name = ti->name;
            ts[k].ndim = ti->ndim;
            memcpy(ts[k].shape, ti->shape, sizeof ti->shape);
            ts[k].data = base[g] + ti->offset;
            k++;
        }
    *n = k;
    return ts;
}

/* ---- checkpoints -------------------------------------------------------------------- */

/* The resume state: [world][loss_sum, items] of the trainer, then the job's bytes. */
typedef struct {
    uint32_t magic, world;
    uint64_t job_len;
} state_header;
#define STATE_MAGIC 0x64747231u /* "dtr1" */

static uint8_t *build_state(trainer *t, size_t *len) {
    double mine[2] = {t->epoch_loss_sum, t->epoch_items};
    double *all = xmalloc((size_t)t->world * sizeof mine);
    comm_allgather(t->comm, mine, all, sizeof mine);
    size_t job_len = 0;
    uint8_t *job_state = NULL;
    if (t->job->save_state) job_state = t->job->save_state(t->js, t, t->step_in_epoch, &job_len);
    state_header h = {STATE_MAGIC, (uint32_t)t->world, job_len};
    size_t n = sizeof h + (size_t)t->world * sizeof mine + job_len;
    uint8_t *buf = xmalloc(n);
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, all, (size_t)t->world * sizeof mine);
    if (job_len) memcpy(buf + sizeof h + (size_t)t->world * sizeof mine, job_state, job_len);
    free(job_state);
    free(all);
    *len = n;
    return buf;
}

static double write_checkpoint(trainer *t) {
    double t0 = now_sec();
    size_t state_len;
    uint8_t *state = build_state(t, &state_len);
    uint64_t *rngs = xmalloc((size_t)t->world * sizeof t->rng);
    comm_allgather(t->comm, &t->rng, rngs, sizeof t->rng);
    int ok = 1;
    if (t->rank == 0) {
        int n;
        ckpt_tensor *ts = state_tensors(t, &n);
        char *cfg = config_to_string(&t->cfg);
        char *mj = NULL;
        size_t mlen = 0;
        FILE *f = open_memstream(&mj, &mlen);
        metrics_write_json(&t->last, f);
        fclose(f);
        ckpt_meta meta = {0};
        snprintf(meta.job, sizeof meta.job, "%s", t->job->name);
        meta.step = t->step;
        meta.epoch = t->epoch;
        meta.step_in_epoch = t->step_in_epoch;
        meta.world_size = t->world;
        meta.lr = t->lr;
        meta.config_text = cfg;
        meta.metrics_json = mj;
        meta.rng_states = rngs;
        meta.job_state = state;
        meta.job_state_len = state_len;
        meta.nextra = 2;
        snprintf(meta.extra[0].key, sizeof meta.extra[0].key, "opt_t");
        meta.extra[0].is_int = 1;
        meta.extra[0].i = t->opt.t;
        snprintf(meta.extra[1].key, sizeof meta.extra[1].key, "epoch_steps");
        meta.extra[1].is_int = 1;
        meta.extra[1].i = t->epoch_steps;
        char name[64], err[1024];
        snprintf(name, sizeof name, "ckpt-%08ld", t->step);
        if (mkdir_p(t->ckpt_dir, err, sizeof err) != 0 ||
            ckpt_write(t->ckpt_dir, name, &meta, ts, n, (int)config_int(&t->cfg, "ckpt_keep"), err,
                       sizeof err) != 0) {
            fprintf(stderr, "dtrain: checkpoint failed: %s\n", err);
            ok = 0;
        } else {
            trainer_log(t, "checkpoint %s/%s.h5 at step %ld (%.2f s)\n", t->ckpt_dir, name, t->step,
                        now_sec() - t0);
        }
        free(mj);
        free(cfg);
        free(ts);
    }
    free(rngs);
    free(state);
    comm_bcast(t->comm, &ok, sizeof ok, 0);
    if (!ok) trainer_fail(t, EXIT_RUNTIME, "stopping: the checkpoint could not be written (the previous one is intact)");
    return now_sec() - t0;
}

/* Rank 0 picks the checkpoint: a given path, or with `auto` the newest one that opens and
 * verifies (warning about each one that does not). "" = start from scratch. */
static int choose_checkpoint(trainer *t, const char *resume, char *path, size_t len) {
    path[0] = '\0';
    char err[1024];
    if (strcmp(resume, "auto") != 0) {
        ckpt *c = ckpt_open(resume, err, sizeof err);
        if (!c) {
            fprintf(stderr, "dtrain: cannot resume: %s\n", err);
            return EXIT_USAGE;
        }
        ckpt_close(c);
        snprintf(path, len, "%s", resume);
        return 0;
    }
    char *cands[256];
    int n = ckpt_candidates(t->ckpt_dir, cands, 256), rc = 0;
    for (int i = 0; i < n; i++) {
        if (!path[0]) {
            ckpt *c = ckpt_open(cands[i], err, sizeof err);
            if (c) {
                ckpt_close(c);
                snprintf(path, len, "%s", cands[i]);
            } else {
                fprintf(stderr, "dtrain: warning: skipping checkpoint: %s\n", err);
            }
        }
        free(cands[i]);
    }
    if (n > 0 && !path[0]) {
        fprintf(stderr, "dtrain: cannot resume: none of the %d checkpoints in %s verifies\n", n, t->ckpt_dir);
        rc = EXIT_USAGE;
    }
    if (n == 0) trainer_log(t, "resume auto: no checkpoint in %s, starting from scratch\n", t->ckpt_dir);
    return rc;
}

static int restore_state(trainer *t, const ckpt_meta *meta) {
    const uint8_t *buf = meta->job_state;
    state_header h;
    if (meta->job_state_len < sizeof h) return -1;
    memcpy(&h, buf, sizeof h);
    size_t per = 2 * sizeof(double);
    if (h.magic != STATE_MAGIC || h.world != (uint32_t)meta->world_size ||
        meta->job_state_len != sizeof h + h.world * per + h.job_len)
        return -1;
    double sums[2] = {0, 0};
    if ((int)h.world == t->world) {
        memcpy(sums, buf + sizeof h + (size_t)t->rank * per, per);
    } else if (t->rank == 0) { /* another world: rank 0 carries the epoch's sums so far */
        for (uint32_t r = 0; r < h.world; r++) {
            double s[2];
            memcpy(s, buf + sizeof h + r * per, per);
            sums[0] += s[0];
            sums[1] += s[1];
        }
    }
    t->epoch_loss_sum = sums[0];
    t->epoch_items = sums[1];
    t->resume_state_len = h.job_len;
    t->resume_state = xmalloc(h.job_len + 1);
    memcpy(t->resume_state, buf + sizeof h + h.world * per, h.job_len);
    return 0;
}

static int64_t extra_int(const ckpt_meta *m, const char *key, int64_t def) {
    for (int i = 0; i < m->nextra; i++)
        if (strcmp(m->extra[i].key, key) == 0) return m->extra[i].is_int ? m->extra[i].i : (int64_t)m->extra[i].d;
    return def;
}

/* Keys that may change on resume without changing what the run computes: where it writes,
 * what it reports and when, which checkpoint it resumes, how many threads share the work. */
static int operational_key(const char *key) {
    static const char *const keys[] = {"out",           "ckpt_dir",  "resume",   "threads",
                                       "log_interval",  "ckpt_keep", "ckpt_interval",
                                       "eval_interval", "comm_timeout", NULL};
    for (int i = 0; keys[i]; i++)
        if (strcmp(key, keys[i]) == 0) return 1;
    return 0;
}

/* Equal as numbers where both are numbers (1e-3 and 0.001), else as text. */
static int same_value(const char *a, const char *b) {
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    if (ea != a && *ea == '\0' && eb != b && *eb == '\0') return x == y;
    return strcmp(a, b) == 0;
}

/* whether a config text (`key = value` lines) sets key */
static int stored_has_key(const char *stored, const char *key) {
    size_t kl = strlen(key);
    for (const char *line = stored; *line;) {
        if (strncmp(line, key, kl) == 0 && strncmp(line + kl, " = ", 3) == 0) return 1;
        const char *end = strchr(line, '\n');
        if (!end) break;
        line = end + 1;
    }
    return 0;
}

/* Rank 0 warns, a line per key, where this run's config differs from the one stored in the
 * checkpoint it resumes (operational keys aside): such a run goes on, as asked, but will not
 * reproduce the uninterrupted run (a new epoch count, for one, reshapes the LR schedule).
 * Keys the stored config lacks are named as well. */
static void warn_config_changes(const trainer *t, const char *stored, const char *path) {
    if (t->rank != 0 || !stored) return;
    for (const char *line = stored; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *eq = memchr(line, '=', len);
        if (eq && eq > line + 1 && eq[-1] == ' ' && eq + 1 < line + len && eq[1] == ' ') {
            char key[128], val[1024];
            size_t kl = (size_t)(eq - 1 - line), vl = len - (size_t)(eq + 2 - line);
            if (kl < sizeof key && vl < sizeof val) {
                memcpy(key, line, kl), key[kl] = '\0';
                memcpy(val, eq + 2, vl), val[vl] = '\0';
                if (!operational_key(key) && config_has(&t->cfg, key) &&
                    !same_value(config_str(&t->cfg, key), val))
                    fprintf(stderr,
                            "dtrain: warning: resuming %s with %s = %s where it was trained with "
                            "%s; the result will differ from an uninterrupted run\n",
                            path, key, config_str(&t->cfg, key), val);
            }
        }
        line += len + (end ? 1 : 0);
    }
    /* keys the checkpoint's config does not name came with a newer dtrain; their defaults
     * may train differently from the code that wrote the checkpoint */
    for (int i = 0; i < t->cfg.n; i++) {
        const char *key = t->cfg.spec[i]->key;
        if (operational_key(key) || stored_has_key(stored, key)) continue;
        fprintf(stderr, "dtrain: warning: resuming %s, whose config has no key '%s' (written by an older "
                "dtrain?): it continues with %s = %s\n", path, key, key, t->cfg.value[i]);
    }
}

/* Every rank reads the checkpoint rank 0 chose: parameters, optimizer state, counters. */
static int load_checkpoint(trainer *t, const char *path) {
    char err[1024];
    /* every rank opens the same file and makes the same checks, in the same order: each is a
     * collective trainer_check (one line, from the lowest rank that failed) */
    ckpt *c = ckpt_open(path, err, sizeof err);
    trainer_check(t, !c, EXIT_USAGE, "cannot resume: %s", err);
    const ckpt_meta *meta = ckpt_get_meta(c);
    trainer_check(t, strcmp(meta->job, t->job->name) != 0, EXIT_USAGE,
                  "cannot resume: %s was written by job '%s', not '%s'", path, meta->job, t->job->name);
    long held = ckpt_count(c, "params");
    trainer_check(t, held != t->model.ntensors, EXIT_USAGE, "cannot resume: %s is incompatible with this model: "
                  "its /params holds %ld tensors, the model has %d (do the shape keys match the checkpoint's?)",
                  path, held, t->model.ntensors);
    int n;
    ckpt_tensor *ts = state_tensors(t, &n);
    for (int i = 0; i < n; i++) {
        trainer_check(t, !ckpt_has(c, ts[i].group, ts[i].name), EXIT_USAGE, "cannot resume: %s is incompatible "
                      "with this model: it has no /%s/%s (was it written with another model or optimizer?)", path,
                      ts[i].group, ts[i].name);
        trainer_check(t, ckpt_read(c, &ts[i], err, sizeof err) != 0, EXIT_USAGE,
                      "cannot resume: %s is incompatible with this model: %s", path, err);
    }
    free(ts);
    t->step = meta->step;
    t->epoch = meta->epoch;
    t->step_in_epoch = meta->step_in_epoch;
    t->epoch_steps = extra_int(meta, "epoch_steps", 0);
    t->opt.t = extra_int(meta, "opt_t", meta->step);
    t->lr = meta->lr;
    t->resume_world = meta->world_size;
    if (meta->world_size == t->world) {
        memcpy(&t->rng, meta->rng_states + 4 * t->rank, sizeof t->rng);
    } else {
        /* streams cannot be mapped onto another world: derive fresh ones from the step */
        rng_seed(&t->rng, (uint64_t)config_int(&t->cfg, "seed") ^ ((uint64_t)t->step << 20), (uint64_t)t->rank);
    }
    trainer_check(t, restore_state(t, meta) != 0, EXIT_USAGE, "cannot resume: %s: its resume state is malformed",
                  path);
    t->resume_job_state = t->step_in_epoch > 0 && t->job->load_state != NULL;
    t->resumed = 1;
    warn_config_changes(t, meta->config_text, path);
    ckpt_close(c);
    trainer_log(t, "resumed from %s: step %ld, epoch %ld, step %ld of the epoch (written by %d rank%s)\n", path,
                t->step, t->epoch + 1, t->step_in_epoch, meta->world_size, meta->world_size == 1 ? "" : "s");
    return 0;
}

/* Picks and loads the checkpoint that --resume asks for. Returns the resumed step, -1 for a
 * fresh start, or -2 - exit code on failure. */
static long maybe_resume(trainer *t) {
    const char *resume = config_str(&t->cfg, "resume");
    if (strcmp(resume, "none") == 0) return -1;
    char path[4096];
    int rc = 0;
    if (t->rank == 0) rc = choose_checkpoint(t, resume, path, sizeof path);
    comm_bcast(t->comm, &rc, sizeof rc, 0);
    if (rc != 0) return -2 - rc;
    comm_bcast(t->comm, path, sizeof path, 0);
    if (!path[0]) return -1;
    load_checkpoint(t, path);
    return t->step;
}

/* ---- set-up and teardown ------------------------------------------------------------ */

static void init_params(trainer *t) {
    if (t->rank == 0) {
        rng init;
        rng_seed(&init, (uint64_t)config_int(&t->cfg, "seed"), 0x1417ull << 32);
        t->job->init_params(t->js, t, &init);
    }
    comm_bcast(t->comm, t->model.params, t->model.nfloats * sizeof(float), 0);
}

/* Checks between keys, and of paths, that a key's own range cannot express. */
static int check_keys(trainer *t) {
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

/* A fresh start (resume = none) into a run directory that already holds a run would
 * overwrite its metrics and mix the two runs' checkpoints: pruning would keep the older
 * run's higher steps and delete the new run's, and a later `--resume auto` would continue
 * the wrong run. So it stops before touching anything and says how to go on. */
static int check_fresh_start(trainer *t) {
    if (strcmp(config_str(&t->cfg, "resume"), "none") != 0) return 0;
    int rc = 0;
    if (t->rank == 0) {
        char *cands[1], metrics[1100];
        int n = ckpt_candidates(t->ckpt_dir, cands, 1);
        snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", t->out_dir);
        int has_metrics = access(metrics, F_OK) == 0;
        if (n > 0) {
            fprintf(stderr, "dtrain: %s already holds a run (%s): continue it with --resume auto, or give "
                    "another --out; a fresh start never overwrites a run\n", t->out_dir, cands[0]);
            rc = EXIT_USAGE;
        } else if (has_metrics) {
            fprintf(stderr, "dtrain: %s already holds a run (%s) but no checkpoint to continue it from: give "
                    "another --out, or remove it to start over; a fresh start never overwrites a run\n",
                    t->out_dir, metrics);
            rc = EXIT_USAGE;
        }
        if (n > 0) free(cands[0]);
    }
    comm_bcast(t->comm, &rc, sizeof rc, 0);
    return rc;
}

static void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int trainer_setup(trainer *t, const job *j, int argc, char **argv) {
    memset(t, 0, sizeof *t);
    t->job = j;
    t->comm = comm_init(&argc, &argv);
    t->rank = comm_rank(t->comm);
    t->world = comm_world(t->comm);
    int rc = parse_args(t, argc, argv);
    if (rc == 0) rc = check_keys(t);
    if (rc != 0) return rc;
    long threads = config_int(&t->cfg, "threads");
    t->threads = threads > 0 ? (int)threads : auto_threads(t->comm);
    kernels_set_threads(t->threads);
    comm_set_timeout(t->comm, config_float(&t->cfg, "comm_timeout"));
    t->grad_accum = (int)config_int(&t->cfg, "grad_accum");
    snprintf(t->out_dir, sizeof t->out_dir, "%s", config_str(&t->cfg, "out"));
    const char *cdir = config_str(&t->cfg, "ckpt_dir");
    if (cdir[0]) snprintf(t->ckpt_dir, sizeof t->ckpt_dir, "%s", cdir);
    else snprintf(t->ckpt_dir, sizeof t->ckpt_dir, "%s/checkpoints", t->out_dir);
    if ((rc = check_fresh_start(t)) != 0) return rc;
    const char *stop_at = getenv("DTRAIN_TEST_STOP_AT_STEP");
    t->test_stop_at = stop_at ? atol(stop_at) : -1;
    rng_seed(&t->rng, (uint64_t)config_int(&t->cfg, "seed"), (uint64_t)t->rank);
    install_signal_handlers();

    t->js = j->create(t);
    model_alloc(&t->model);
    init_params(t);
    t->steps_per_epoch = j->steps_per_epoch(t->js, t);
    trainer_check(t, t->steps_per_epoch < 1, EXIT_USAGE, "bad value '%ld' for key 'batch_size': batch_size x "
                  "grad_accum (%ld) is more than the training set holds (one step must fit in an epoch)",
                  config_int(&t->cfg, "batch_size"), config_int(&t->cfg, "batch_size") * t->grad_accum);
    long max_steps = config_int(&t->cfg, "max_steps");
    t->total_steps = max_steps > 0 ? max_steps : t->steps_per_epoch * config_int(&t->cfg, "epochs");
    setup_optimizer(t);
    long resumed = maybe_resume(t);
    if (resumed < -1) return (int)(-resumed - 2);
    return open_run_dir(t, resumed);
}

void trainer_teardown(trainer *t) {
    if (t->js && t->job->destroy) t->job->destroy(t->js);
    t->js = NULL;
    if (t->metrics_file) fclose(t->metrics_file);
    t->metrics_file = NULL;
    free(t->resume_state);
    t->resume_state = NULL;
    optim_free(&t->opt);
    for (int b = 0; b < t->nbuffers; b++) kernels_free(t->buffers[b].data);
    t->nbuffers = 0;
    if (t->model.params) model_free(&t->model);
    config_free(&t->cfg);
    comm_finalize(t->comm);
    t->comm = NULL;
}

int trainer_load_for_inference(trainer *t, const job *j, const char *ckpt_path, int argc,
                               char **argv) {
    memset(t, 0, sizeof *t);
    t->job = j;
    t->comm = comm_init(&argc, &argv);
    t->rank = comm_rank(t->comm);
    t->world = comm_world(t->comm);
    char err[1024];
    ckpt *c = ckpt_open(ckpt_path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "dtrain: %s\n", err);
        return EXIT_USAGE;
    }
    const ckpt_meta *meta = ckpt_get_meta(c);
    int rc = declare_keys(t);
    if (rc == 0 && strcmp(meta->job, j->name) != 0) {
        fprintf(stderr, "dtrain: %s was written by job '%s', not '%s'\n", ckpt_path, meta->job, j->name);
        rc = EXIT_USAGE;
    }
    if (rc == 0 && apply_text(&t->cfg, meta->config_text, "checkpoint", err, sizeof err) != 0) {
        fprintf(stderr, "dtrain: %s: stored config: %s\n", ckpt_path, err);
        rc = EXIT_USAGE;
    }
    if (rc == 0) rc = apply_cli(t, argc, argv);
    if (rc != 0) {
        ckpt_close(c);
        return rc;
    }
    t->threads = auto_threads(t->comm);
    kernels_set_threads(t->threads);
    t->grad_accum = 1;
    ckpt_close(c);
    t->js = j->create(t);
    model_alloc(&t->model);
    rc = trainer_read_group(t, ckpt_path, "params", t->model.params);
    return rc;
}

int trainer_read_group(trainer *t, const char *ckpt_path, const char *group, float *dst) {
    char err[1024];
    ckpt *c = ckpt_open(ckpt_path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "dtrain: %s\n", err);
        return EXIT_USAGE;
    }
    long held = ckpt_count(c, group);
    if (held != t->model.ntensors) {
        fprintf(stderr,
                "dtrain: %s does not fit this model: its /%s holds %ld tensors, the model has %d "
                "(do the shape keys, such as n_layer, match the checkpoint's?)\n",
                ckpt_path, group, held, t->model.ntensors);
        ckpt_close(c);
        return EXIT_USAGE;
    }
    for (int i = 0; i < t->model.ntensors; i++) {
        const tensor_info *ti = &t->model.tensors[i];
        ckpt_tensor ct = {group, ti->name, ti->ndim, {0}, dst + ti->offset};
        memcpy(ct.shape, ti->shape, sizeof ti->shape);
        if (!ckpt_has(c, group, ti->name) || ckpt_read(c, &ct, err, sizeof err) != 0) {
            fprintf(stderr, "dtrain: %s does not fit this model: %s\n", ckpt_path,
                    ckpt_has(c, group, ti->name) ? err : "a tensor is missing");
            ckpt_close(c);
            return EXIT_USAGE;
        }
    }
    t->step = ckpt_get_meta(c)->step;
    ckpt_close(c);
    return 0;
}

/* ---- the loop ----------------------------------------------------------------------- */

void trainer_apply_gradients(trainer *t) {
    comm_allreduce_mean_f32(t->comm, t->model.grads, t->model.nfloats);
    t->grad_norm = clip_grad_norm(&t->model, config_float(&t->cfg, "grad_clip"));
    t->lr = lr_at(&t->sched, t->step);
    optim_step(&t->opt, &t->model, (float)t->lr);
    t->step++;
}

/* One optimizer step over grad_accum micro-batches; returns this rank's mean loss. */
static float train_step(trainer *t, long *items) {
    model_zero_grads(&t->model);
    double loss = 0;
    *items = 0;
    for (int micro = 0; micro < t->grad_accum; micro++) {
        long n = 0;
        loss += t->job->forward_backward(t->js, t, t->step_in_epoch, micro, &n);
        *items += n;
    }
    trainer_apply_gradients(t);
    if (t->job->after_step) t->job->after_step(t->js, t);
    return (float)(loss / t->grad_accum);
}

/* The ranks agree at every step boundary: the global mean loss, whether any rank's loss or
 * the gradient norm is not finite, and whether any rank was asked to stop. */
typedef struct {
    double loss;
    int nonfinite, stop;
} step_flags;

static step_flags agree(trainer *t, float local_loss) {
    /* the test hook behaves exactly like a signal that arrives during step test_stop_at */
    int stop = g_stop_signal != 0 || (t->test_stop_at > 0 && t->step == t->test_stop_at);
    double v[3] = {local_loss, !isfinite(local_loss) || !isfinite(t->grad_norm), stop};
    comm_allreduce_sum_f64(t->comm, v, 3);
    step_flags f = {v[0] / t->world, v[1] > 0, v[2] > 0};
    return f;
}

typedef struct {
    double t0;            /* start of the run */
    double train_time;    /* seconds inside steps, summed over the run */
    double items;         /* units processed by all ranks over the run */
    double epoch_time;    /* seconds inside steps in this epoch */
    double log_time, log_items; /* since the last step line */
    long last_eval_step, last_ckpt_step;
    char per_s[64];
} clock_state;

static void log_step(trainer *t, clock_state *cs, double loss) {
    double rate = cs->log_items / cs->log_time;
    double eta = cs->train_time / (double)t->step * (double)(t->total_steps - t->step);
    trainer_log(t, "step %ld/%ld | loss %.4f | lr %.3e | %.1f ms | %.0f %s/s | grad norm %.3f | eta %.0f s\n",
                t->step, t->total_steps, loss, t->lr, 1e3 * cs->log_time / config_int(&t->cfg, "log_interval"),
                rate, t->job->unit, t->grad_norm, eta);
    metrics m = {0};
    metrics_set(&m, "step", (double)t->step);
    metrics_set(&m, "loss", loss);
    metrics_set(&m, "lr", t->lr);
    metrics_set(&m, "grad_norm", t->grad_norm);
    metrics_set(&m, cs->per_s, rate);
    metrics_set(&m, "ms_per_step", 1e3 * cs->log_time / config_int(&t->cfg, "log_interval"));
    write_metrics_line(t, &m);
    cs->log_time = cs->log_items = 0;
}

static void log_eval(trainer *t, clock_state *cs, metrics *m) {
    metrics_set(m, "step", (double)t->step);
    t->job->eval(t->js, t, m);
    write_metrics_line(t, m);
    trainer_log(t, "eval at step %ld:", t->step);
    for (int i = 0; i < m->n; i++)
        if (!m->kv[i].is_str && strcmp(m->kv[i].key, "step") != 0)
            trainer_log(t, " %s %.4f", m->kv[i].key, m->kv[i].num);
    trainer_log(t, "\n");
    cs->last_eval_step = t->step;
}

/* End of an epoch: the epoch's train loss over all ranks and steps, the evaluation, and a
 * metrics line (when evaluation follows epochs rather than steps). */
static void end_epoch(trainer *t, clock_state *cs, long epochs) {
    double sums[2] = {t->epoch_loss_sum, t->epoch_items};
    comm_allreduce_sum_f64(t->comm, sums, 2);
    double train_loss = sums[0] / ((double)t->epoch_steps * t->world);
    if (config_int(&t->cfg, "eval_interval") == 0) {
        metrics m = {0};
        metrics_set(&m, "epoch", (double)(t->epoch + 1));
        metrics_set(&m, "step", (double)t->step);
        metrics_set(&m, "train_loss", train_loss);
        t->job->eval(t->js, t, &m);
        double rate = cs->epoch_time > 0 ? sums[1] / cs->epoch_time : 0;
        metrics_set(&m, cs->per_s, rate);
        metrics_set(&m, "lr", t->lr);
        metrics_set(&m, "epoch_time_s", cs->epoch_time);
        write_metrics_line(t, &m);
        cs->last_eval_step = t->step;
        double test_loss = 0, test_acc = 0;
        metrics_get(&m, "test_loss", &test_loss);
        int has_acc = metrics_get(&m, "test_acc", &test_acc);
        trainer_log(t, "epoch %ld/%ld | train loss %.4f | test loss %.4f", t->epoch + 1, epochs, train_loss,
                    test_loss);
        if (has_acc) trainer_log(t, " | test acc %.2f%%", 100.0 * test_acc);
        trainer_log(t, " | %.0f %s/s | %.2f s\n", rate, t->job->unit, cs->epoch_time);
    }
    t->epoch++;
    t->step_in_epoch = 0;
    t->epoch_steps = 0;
    t->epoch_loss_sum = t->epoch_items = 0;
    cs->epoch_time = 0;
}

static void begin_epoch(trainer *t) {
    if (t->resume_job_state) {
        long first = 0;
        t->epoch_steps = t->job->load_state(t->js, t, t->epoch, t->step_in_epoch, t->resume_world,
                                            t->resume_state, t->resume_state_len, &first);
        t->step_in_epoch = first;
        t->resume_job_state = 0;
    } else {
        t->epoch_steps = t->job->start_epoch(t->js, t, t->epoch);
    }
}

static int finished(const trainer *t, long epochs) {
    return config_int(&t->cfg, "max_steps") > 0 ? t->step >= t->total_steps : t->epoch >= epochs;
}

/* Runs steps until the end of training or a stop; returns an exit code. */
static int run_loop(trainer *t, clock_state *cs) {
    long epochs = config_int(&t->cfg, "epochs");
    long log_interval = config_int(&t->cfg, "log_interval");
    long eval_interval = config_int(&t->cfg, "eval_interval");
    long ckpt_interval = config_int(&t->cfg, "ckpt_interval");
    while (!finished(t, epochs)) {
        begin_epoch(t);
        while (t->step_in_epoch < t->epoch_steps && !(config_int(&t->cfg, "max_steps") > 0 && t->step >= t->total_steps)) {
            double s0 = now_sec();
            long items;
            float loss = train_step(t, &items);
            step_flags f = agree(t, loss);
            double dt = now_sec() - s0;
            cs->train_time += dt, cs->epoch_time += dt, cs->log_time += dt;
            cs->items += (double)items * t->world, cs->log_items += (double)items * t->world;
            t->step_in_epoch++;
            t->epoch_loss_sum += loss;
            t->epoch_items += (double)items;
            t->last_loss = f.loss;
            if (f.nonfinite) {
                trainer_log(t, "dtrain: the loss became %s at step %ld (epoch %ld): stopping without a checkpoint; "
                            "the last good one stays in %s\n", isfinite(f.loss) ? "non-finite in the gradients" :
                            (isnan(f.loss) ? "NaN" : "infinite"), t->step, t->epoch + 1, t->ckpt_dir);
                return EXIT_DIVERGED;
            }
            if (log_interval > 0 && t->step % log_interval == 0) log_step(t, cs, f.loss);
            if (eval_interval > 0 && t->step % eval_interval == 0) {
                metrics m = {0};
                log_eval(t, cs, &m);
            }
            if (f.stop) {
                trainer_log(t, "stop requested by a signal at step %ld: writing a checkpoint\n", t->step);
                write_checkpoint(t);
                return EXIT_PREEMPTED;
            }
            if (ckpt_interval > 0 && t->step % ckpt_interval == 0) {
                write_checkpoint(t);
                cs->last_ckpt_step = t->step;
            }
        }
        if (t->step_in_epoch >= t->epoch_steps) {
            end_epoch(t, cs, epochs);
            if (ckpt_interval == 0 && !finished(t, epochs)) {
                write_checkpoint(t);
                cs->last_ckpt_step = t->step;
            }
        }
    }
    return EXIT_OK;
}

/* Who started us: srun sets SLURM_PROCID per task, mpirun sets OMPI_COMM_WORLD_RANK. */
static const char *launcher(void) {
    if (getenv("OMPI_COMM_WORLD_RANK")) return "mpirun";
    if (getenv("SLURM_PROCID") && getenv("SLURM_STEP_ID")) return "srun";
    return "singleton";
}

static void print_world(trainer *t) {
    int local_max = comm_local_size(t->comm) - 1;
    trainer_log(t, "dtrain %s | %d rank%s on %d node%s [%s] (local ranks 0-%d) | launcher %s | device cpu | "
                "%d thread%s per rank | %zu parameters\n", t->job->name, t->world, t->world == 1 ? "" : "s",
                comm_nodes(t->comm), comm_nodes(t->comm) == 1 ? "" : "s", comm_node_list(t->comm), local_max,
                launcher(), t->threads,
                t->threads == 1 ? "" : "s", t->model.nparams);
    const char *ntasks = getenv("SLURM_NTASKS"), *job = getenv("SLURM_JOB_ID");
    if (ntasks && job && strcmp(launcher(), "srun") == 0) {
        trainer_log(t, "slurm job %s: SLURM_NTASKS=%s SLURM_PROCID=%s SLURM_LOCALID=%s\n", job, ntasks,
                    getenv("SLURM_PROCID"), getenv("SLURM_LOCALID") ? getenv("SLURM_LOCALID") : "?");
        if (atoi(ntasks) != t->world)
            trainer_log(t, "dtrain: warning: SLURM_NTASKS=%s but MPI reports %d ranks (was srun started "
                        "without --mpi=pmix?)\n", ntasks, t->world);
    }
}

static int write_summary(trainer *t, clock_state *cs) {
    const job *j = t->job;
    for (int i = 0; i < t->last.n; i++) {
        const metric_kv *kv = &t->last.kv[i];
        if (kv->is_str) metrics_set_str(&t->summary, kv->key, kv->str);
        else metrics_set(&t->summary, kv->key, kv->num);
    }
    metrics_set_str(&t->summary, "job", j->name);
    /* epochs trained, with the fraction of a last epoch that max_steps cut short */
    double part = t->epoch_steps > 0 ? (double)t->step_in_epoch / (double)t->epoch_steps : 0.0;
    metrics_set(&t->summary, "epochs", (double)t->epoch + part);
    metrics_set(&t->summary, "steps", (double)t->step);
    metrics_set(&t->summary, cs->per_s, cs->train_time > 0 ? cs->items / cs->train_time : 0);
    metrics_set(&t->summary, "params", (double)t->model.nparams);
    metrics_set(&t->summary, "world_size", (double)t->world);
    metrics_set(&t->summary, "threads_per_rank", (double)t->threads);
    metrics_set(&t->summary, "train_time_s", cs->train_time);
    metrics_set(&t->summary, "wall_time_s", now_sec() - cs->t0);
    j->finish(t->js, t, &t->summary);
    if (t->rank != 0) return 0;
    char path[1100], err[1200];
    snprintf(path, sizeof path, "%s/summary.json", t->out_dir);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    metrics_write_json(&t->summary, f);
    fputc('\n', f);
    fclose(f);
    int rc = write_file_atomic(path, buf, len, err, sizeof err);
    if (rc != 0) fprintf(stderr, "dtrain: %s\n", err);
    free(buf);
    return rc;
}

/* Whether OUT holds the summary.json that only a finished run writes (collective). */
static int run_complete(trainer *t) {
    int done = 0;
    if (t->rank == 0) {
        char path[1100];
        snprintf(path, sizeof path, "%s/summary.json", t->out_dir);
        done = access(path, F_OK) == 0;
    }
    comm_bcast(t->comm, &done, sizeof done, 0);
    return done;
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
    clock_state cs = {0};
    cs.t0 = now_sec();
    cs.last_eval_step = cs.last_ckpt_step = -1;
    snprintf(cs.per_s, sizeof cs.per_s, "%s_per_s", j->unit);
    long start_step = t->step;
    rc = run_loop(t, &cs);
    if (rc == EXIT_OK && t->resumed && t->step == start_step && run_complete(t)) {
        /* resumed from the checkpoint of a finished run (a requeued job, say): evaluating and
         * writing again would only add a duplicate metrics line and a summary without timings */
        trainer_log(t, "the run in %s is already complete at step %ld: nothing to do\n", t->out_dir, t->step);
    } else if (rc == EXIT_OK) {
        /* the final model is always evaluated, also when max_steps ends a run between
         * epochs or evaluations: summary.json reports the model the run leaves behind */
        if (cs.last_eval_step != t->step) {
            metrics m = {0};
            log_eval(t, &cs, &m);
        }
        if (cs.last_ckpt_step != t->step) write_checkpoint(t);
        rc = write_summary(t, &cs) == 0 ? EXIT_OK : EXIT_RUNTIME;
    }
    trainer_teardown(t);
    free(t);
    return rc;
}
