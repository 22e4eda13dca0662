/* train_state.c: the checkpoint contract: everything a checkpoint holds, and the one table
 * that both writes and reads the training state.
 *
 * A checkpoint holds the tensors (the parameters, each optimizer buffer, the job's extra
 * buffers such as "ema": one group each, laid out like the parameters) and the training
 * state below: the trainer's fields in /train_state, one line each in TRAIN_STATE, and the
 * job's in /job_state, one line each in the job's state_fields table (job.h). A scalar is
 * an attribute of its group, a per-rank value a dataset [world_size] or [world_size, n]; h5py
 * reads them by name (f["train_state"].attrs["step"], f["train_state/rng"][rank]).
 * Adding a field is one line in the table; format 1 checkpoints are read by ckpt_v1.c. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "train_state.h"
#include "util.h"

/* A trainer member's offset, checked at compile time to hold n values of the type. */
#define AT(member, type, n)                                                                         \
    (offsetof(trainer, member) +                                                                   \
     0 * sizeof(char[sizeof(((trainer *)0)->member) == STATE_TYPE_SIZE(type) * (n) ? 1 : -1]))
/* One value of the run: an attribute of /train_state, read back into the same member. */
#define RUN(name, type, member, v1) {name, type, 0, AT(member, type, 1), AT(member, type, 1), 0, v1}
/* n values per rank: a dataset [world_size] or [world_size, n] gathered from every rank. */
#define PER_RANK(name, type, n, member, on_resize, v1) \
    {name, type, n, AT(member, type, n), AT(member, type, n), on_resize, v1}

/* The trainer's training state, one line per field. The last column is where format 1 kept
 * it (ckpt_v1.c; NULL: in its byte blob). */
const state_entry TRAIN_STATE[] = {
    RUN("step", CKPT_I64, step, "step"),                   /* optimizer steps taken */
    RUN("epoch", CKPT_I64, epoch, "epoch"),                /* the current epoch, from 0 */
    RUN("step_in_epoch", CKPT_I64, step_in_epoch, "step_in_epoch"),
    RUN("epoch_steps", CKPT_I64, epoch_steps, "epoch_steps"), /* steps of the current epoch */
    RUN("optimizer_steps", CKPT_I64, opt.t, "opt_t"),      /* Adam's bias-correction count */
    RUN("lr", CKPT_F64, lr, "lr"),                         /* the learning rate of the last step */
    /* the world that wrote the checkpoint: read into resume_world, not world */
    {"world_size", CKPT_I32, 0, AT(world, CKPT_I32, 1), AT(resume_world, CKPT_I32, 1), 0, "world_size"},
    PER_RANK("rng", CKPT_U64, 4, rng, RESIZE_RESEED, "rng_states"), /* each rank's stream */
    PER_RANK("epoch_loss_sum", CKPT_F64, 1, epoch_loss_sum, RESIZE_SUM_RANK0, NULL),
    PER_RANK("epoch_items", CKPT_F64, 1, epoch_items, RESIZE_SUM_RANK0, NULL),
};
const int TRAIN_STATE_N = (int)(sizeof TRAIN_STATE / sizeof TRAIN_STATE[0]);

size_t state_type_size(ckpt_type type) { return STATE_TYPE_SIZE(type); }

/* ---- tensors ------------------------------------------------------------------------ */

float *trainer_add_buffer(trainer *t, const char *group) {
    if (t->nbuffers == (int)(sizeof t->buffers / sizeof t->buffers[0]))
        trainer_fail(t, EXIT_RUNTIME, "too many extra buffers (adding '%s')", group);
    snprintf(t->buffers[t->nbuffers].group, sizeof t->buffers[0].group, "%s", group);
    t->buffers[t->nbuffers].data = kernels_alloc(t->model.nfloats);
    return t->buffers[t->nbuffers++].data;
}

/* Every buffer a checkpoint holds, in the backend's memory: the parameters, each optimizer
 * state and the job's extra buffers, one group each, laid out like the parameters. */
static int state_groups(trainer *t, const char **gname, float **base) {
    int groups = 0;
    gname[groups] = "params", base[groups++] = t->model.params;
    if (t->opt.m) gname[groups] = t->opt.kind == OPT_SGD ? "momentum" : "adam_m", base[groups++] = t->opt.m;
    if (t->opt.v) gname[groups] = "adam_v", base[groups++] = t->opt.v;
    for (int b = 0; b < t->nbuffers; b++) gname[groups] = t->buffers[b].group, base[groups++] = t->buffers[b].data;
    return groups;
}

#define STATE_GROUPS_MAX 8

/* The tensors of every group, as views into `host`: a host copy of the groups, one after
 * the other, model.nfloats floats each (checkpoints pass through the host; the backend's
 * memory may be a GPU's). */
static ckpt_tensor *state_tensors(trainer *t, float *host, int *n) {
    const model *m = &t->model;
    const char *gname[STATE_GROUPS_MAX];
    float *base[STATE_GROUPS_MAX];
    int groups = state_groups(t, gname, base);
    ckpt_tensor *ts = xcalloc((size_t)(groups * m->ntensors), sizeof *ts);
    int k = 0;
    for (int g = 0; g < groups; g++)
        for (int i = 0; i < m->ntensors; i++) {
            const tensor_info *ti = &m->tensors[i];
            ts[k].group = gname[g];
            ts[k].name = ti->name;
            ts[k].ndim = ti->ndim;
            memcpy(ts[k].shape, ti->shape, sizeof ti->shape);
            ts[k].data = host + (size_t)g * m->nfloats + ti->offset;
            k++;
        }
    *n = k;
    return ts;
}

/* A host buffer for every group (model.nfloats floats each): with `download`, filled from
 * the backend's memory; else zeroed (the padding between tensors, which no file holds). */
static float *host_groups(trainer *t, int download) {
    const char *gname[STATE_GROUPS_MAX];
    float *base[STATE_GROUPS_MAX];
    int groups = state_groups(t, gname, base);
    size_t nf = t->model.nfloats;
    float *host = download ? xmalloc((size_t)groups * (nf ? nf : 1) * sizeof(float))
                           : xcalloc((size_t)groups * (nf ? nf : 1), sizeof(float));
    if (download)
        for (int g = 0; g < groups; g++) kernels_to_host(host + (size_t)g * nf, base[g], nf * sizeof(float));
    return host;
}

/* The backend's memory of every group <- the host buffers (of host_groups). */
static void upload_groups(trainer *t, const float *host) {
    const char *gname[STATE_GROUPS_MAX];
    float *base[STATE_GROUPS_MAX];
    int groups = state_groups(t, gname, base);
    size_t nf = t->model.nfloats;
    for (int g = 0; g < groups; g++) kernels_to_device(base[g], host + (size_t)g * nf, nf * sizeof(float));
}

/* ---- writing -------------------------------------------------------------------------- */

/* Collective: the trainer's fields, per-rank ones gathered from every rank (data malloc'd). */
static void gather_trainer_fields(trainer *t, ckpt_field *f) {
    for (int i = 0; i < TRAIN_STATE_N; i++) {
        const state_entry *e = &TRAIN_STATE[i];
        size_t bytes = state_type_size(e->type) * (size_t)(e->per_rank ? e->per_rank : 1);
        f[i] = (ckpt_field){"train_state", e->name, e->type, 0, {0, 0}, xmalloc(bytes * (size_t)t->world)};
        if (!e->per_rank) {
            memcpy(f[i].data, (char *)t + e->at, bytes);
            continue;
        }
        comm_allgather(t->comm, (char *)t + e->at, f[i].data, bytes);
        f[i].ndim = e->per_rank > 1 ? 2 : 1;
        f[i].dims[0] = t->world;
        f[i].dims[1] = e->per_rank;
    }
}

/* Collective: the job's fields, filled by its save_state (data malloc'd). */
static int gather_job_fields(trainer *t, ckpt_field *f) {
    const ckpt_field *decl = t->job->save_state ? t->job->state_fields : NULL;
    int n = 0;
    for (; decl && decl[n].name; n++) {
        if (n == JOB_STATE_MAX) trainer_fail(t, EXIT_RUNTIME, "internal error: %s declares more than %d state fields",
                                             t->job->name, JOB_STATE_MAX);
        f[n] = decl[n];
        f[n].group = "job_state";
        f[n].data = NULL;
    }
    if (n > 0) t->job->save_state(t->js, t, t->step_in_epoch, f);
    return n;
}

static int write_file(trainer *t, const ckpt_field *fields, int nfields, double t0) {
    int n;
    float *host = host_groups(t, 1);
    ckpt_tensor *ts = state_tensors(t, host, &n);
    char *cfg = config_to_string(&t->cfg);
    char *mj = NULL;
    size_t mlen = 0;
    FILE *f = open_memstream(&mj, &mlen);
    metrics_write_json(&t->last, f);
    fclose(f);
    ckpt_meta meta = {.config_text = cfg, .metrics_json = mj, .fields = fields, .nfields = nfields};
    snprintf(meta.job, sizeof meta.job, "%s", t->job->name);
    char name[64], err[1024];
    snprintf(name, sizeof name, "ckpt-%08ld", t->step);
    int ok = 1;
    if (mkdir_p(t->ckpt_dir, err, sizeof err) != 0 ||
        ckpt_write(t->ckpt_dir, name, &meta, ts, n, (int)config_int(&t->cfg, "ckpt_keep"), err, sizeof err) != 0) {
        fprintf(stderr, "dtrain: checkpoint failed: %s\n", err);
        ok = 0;
    } else {
        trainer_log(t, "checkpoint %s/%s.h5 at step %ld (%.2f s)\n", t->ckpt_dir, name, t->step, now_sec() - t0);
    }
    free(mj);
    free(cfg);
    free(ts);
    free(host);
    return ok;
}

double train_state_write(trainer *t) {
    double t0 = now_sec();
    ckpt_field fields[TRAIN_STATE_MAX];
    gather_trainer_fields(t, fields);
    int n = TRAIN_STATE_N + gather_job_fields(t, fields + TRAIN_STATE_N);
    int ok = t->rank == 0 ? write_file(t, fields, n, t0) : 1;
    for (int i = 0; i < n; i++) free(fields[i].data);
    comm_bcast(t->comm, &ok, sizeof ok, 0);
    if (!ok) trainer_fail(t, EXIT_RUNTIME, "stopping: the checkpoint could not be written (the previous one is intact)");
    return now_sec() - t0;
}

/* ---- reading -------------------------------------------------------------------------- */

/* Reads the format-2 fields: the trainer's (scalars into vals, per-rank ones malloc'd) and
 * the job's (malloc'd). -1 with err. */
static int entry_index(const char *name) {
    for (int i = 0; i < TRAIN_STATE_N; i++)
        if (strcmp(TRAIN_STATE[i].name, name) == 0) return i;
    DIE("internal error: no training-state field '%s'", name);
}

/* The world that wrote the checkpoint, as read (0 before it is). */
static int64_t saved_world_of(const loaded_state *s) { return s->vals[entry_index("world_size")]; }

static int check_world(ckpt *c, const loaded_state *s, const char *where, char *err, size_t errlen) {
    int64_t w = saved_world_of(s);
    if (w >= 1 && w <= STATE_WORLD_MAX) return 0;
    snprintf(err, errlen, "%s: %sworld_size = %lld, expected 1..%d", ckpt_path(c), where, (long long)w,
             STATE_WORLD_MAX);
    return -1;
}

/* Reads the format-2 fields: the trainer's (scalars into vals, per-rank ones malloc'd) and
 * the job's (malloc'd). The scalars come first in the table, world_size among them, so that
 * a per-rank field is read into a buffer of the shape that world implies, never of the
 * shape the file claims. -1 with err. */
static int read_fields(ckpt *c, const job *j, loaded_state *s, char *err, size_t errlen) {
    for (int i = 0; i < TRAIN_STATE_N; i++) {
        const state_entry *e = &TRAIN_STATE[i];
        s->trainer[i] = (ckpt_field){"train_state", e->name, e->type, e->per_rank ? (e->per_rank > 1 ? 2 : 1) : 0,
                                     {0, 0}, e->per_rank ? NULL : &s->vals[i]};
        if (e->per_rank) {
            if (check_world(c, s, "/train_state ", err, errlen) != 0) return -1;
            int64_t w = saved_world_of(s);
            s->trainer[i].dims[0] = w;
            s->trainer[i].dims[1] = e->per_rank;
            s->trainer[i].data = xmalloc(state_type_size(e->type) * (size_t)e->per_rank * (size_t)w);
        }
        if (ckpt_read_field(c, &s->trainer[i], err, errlen) != 0) return -1;
    }
    for (int i = 0; j->state_fields && j->state_fields[i].name && i < JOB_STATE_MAX; i++) {
        s->job[i] = j->state_fields[i];
        s->job[i].group = "job_state";
        s->job[i].data = s->job[i].ndim == 0 ? xcalloc(1, 8) : NULL;
        s->njob = i + 1;
        if (ckpt_read_field(c, &s->job[i], err, errlen) != 0) return -1;
    }
    return 0;
}

/* ---- checking what was read, before any of it is used --------------------------------
 *
 * Every value of the training state is checked against its range and against the others
 * of the same file and its stored config. These hold for every checkpoint dtrain writes:
 *   0 <= step, epoch, step_in_epoch, epoch_steps, optimizer_steps < 2^53;
 *   step_in_epoch <= epoch_steps (a checkpoint may fall on an epoch's last step);
 *   epoch + step_in_epoch <= step (every finished epoch took at least one step);
 *   optimizer_steps <= step; lr finite and >= 0; world_size in 1..2^20;
 *   per-rank fields shaped [world_size] or [world_size, n]; no RNG state all zeros
 *   (xoshiro256** never leaves it); the epoch's loss sum finite, its item count >= 0;
 *   with the stored config's max_steps > 0: step <= max_steps; else epoch <= epochs, and
 *   at epoch = epochs (a finished run) step_in_epoch = 0. */

static int stored_long(const char *text, const char *key, long long *out) {
    size_t kl = strlen(key);
    for (const char *line = text ? text : ""; *line;) {
        if (strncmp(line, key, kl) == 0 && strncmp(line + kl, " = ", 3) == 0) {
            char *end;
            long long v = strtoll(line + kl + 3, &end, 10);
            if (end == line + kl + 3 || (*end != '\n' && *end != '\0')) return -1;
            *out = v;
            return 0;
        }
        const char *nl = strchr(line, '\n');
        if (!nl) break;
        line = nl + 1;
    }
    return -1;
}

static int bad_state(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad_state(char *err, size_t errlen, const char *path, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: training state: %s", path, what);
    return -1;
}

static int check_state(ckpt *c, const loaded_state *s, char *err, size_t errlen) {
    const char *path = ckpt_path(c);
    const char *counters[] = {"step", "epoch", "step_in_epoch", "epoch_steps", "optimizer_steps"};
    for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++) {
        int64_t v = s->vals[entry_index(counters[k])];
        if (v < 0 || v >= STATE_COUNTER_MAX)
            return bad_state(err, errlen, path, "%s = %lld, expected 0..%lld", counters[k], (long long)v,
                             STATE_COUNTER_MAX - 1);
    }
    int64_t step = s->vals[entry_index("step")], epoch = s->vals[entry_index("epoch")];
    int64_t sie = s->vals[entry_index("step_in_epoch")], esteps = s->vals[entry_index("epoch_steps")];
    int64_t opt_t = s->vals[entry_index("optimizer_steps")];
    double lr;
    memcpy(&lr, &s->vals[entry_index("lr")], sizeof lr);
    if (sie > esteps)
        return bad_state(err, errlen, path, "step_in_epoch = %lld, expected at most epoch_steps = %lld",
                         (long long)sie, (long long)esteps);
    if (epoch + sie > step)
        return bad_state(err, errlen, path, "step = %lld, expected at least epoch + step_in_epoch = %lld + %lld "
                         "(every epoch takes a step)", (long long)step, (long long)epoch, (long long)sie);
    if (opt_t > step)
        return bad_state(err, errlen, path, "optimizer_steps = %lld, expected at most step = %lld",
                         (long long)opt_t, (long long)step);
    if (!isfinite(lr) || lr < 0) return bad_state(err, errlen, path, "lr = %g, expected a finite number >= 0", lr);
    if (check_world(c, s, "", err, errlen) != 0) return -1;
    int64_t world = saved_world_of(s);
    for (int i = 0; i < TRAIN_STATE_N; i++) {
        const state_entry *e = &TRAIN_STATE[i];
        const ckpt_field *f = &s->trainer[i];
        if (!e->per_rank) continue;
        if (f->dims[0] != world || (f->ndim == 2 && f->dims[1] != e->per_rank) || (f->ndim == 1 && e->per_rank != 1))
            return bad_state(err, errlen, path, "%s has %lld rows of %lld, expected world_size = %lld rows of %d",
                             e->name, (long long)f->dims[0], (long long)(f->ndim == 2 ? f->dims[1] : 1),
                             (long long)world, e->per_rank);
        for (int64_t r = 0; r < world; r++) {
            if (e->type == CKPT_U64) { /* an RNG state */
                const uint64_t *row = (const uint64_t *)f->data + r * e->per_rank;
                uint64_t any = 0;
                for (int k = 0; k < e->per_rank; k++) any |= row[k];
                if (!any) return bad_state(err, errlen, path, "%s of rank %lld is all zeros, which no generator "
                                           "state can be", e->name, (long long)r);
            } else if (e->type == CKPT_F64) {
                double v = ((const double *)f->data)[r];
                if (!isfinite(v) || (strcmp(e->name, "epoch_items") == 0 && v < 0))
                    return bad_state(err, errlen, path, "%s of rank %lld = %g, expected a finite number%s",
                                     e->name, (long long)r, v, strcmp(e->name, "epoch_items") == 0 ? " >= 0" : "");
            }
        }
    }
    /* against the config the checkpoint was written with */
    const char *stored = ckpt_get_meta(c)->config_text;
    long long max_steps, epochs;
    if (stored_long(stored, "max_steps", &max_steps) == 0 && max_steps > 0) {
        if (step > max_steps)
            return bad_state(err, errlen, path, "step = %lld, expected at most its config's max_steps = %lld",
                             (long long)step, max_steps);
    } else if (stored_long(stored, "epochs", &epochs) == 0) {
        if (epoch > epochs)
            return bad_state(err, errlen, path, "epoch = %lld, expected at most its config's epochs = %lld",
                             (long long)epoch, epochs);
        if (epoch == epochs && sie != 0)
            return bad_state(err, errlen, path, "epoch = %lld (the run's last) with step_in_epoch = %lld, "
                             "expected 0", (long long)epoch, (long long)sie);
    }
    return 0;
}

/* A per-rank field into this rank's member: its own row when the world is the same, else
 * what the entry says (fresh RNG streams from the step; the epoch's sums carried by rank 0). */
static int apply_per_rank(trainer *t, const state_entry *e, const ckpt_field *f, int saved_world) {
    size_t row = state_type_size(e->type) * (size_t)e->per_rank;
    if (f->dims[0] != saved_world || (f->ndim == 2 && f->dims[1] != e->per_rank)) return -1;
    char *dst = (char *)t + e->into;
    if (saved_world == t->world) {
        memcpy(dst, (const char *)f->data + row * (size_t)t->rank, row);
    } else if (e->on_resize == RESIZE_RESEED) {
        /* streams cannot be mapped onto another world: derive fresh ones from the step */
        rng_seed(&t->rng, (uint64_t)config_int(&t->cfg, "seed") ^ ((uint64_t)t->step << 20), (uint64_t)t->rank);
    } else {
        double sum = 0;
        for (int r = 0; r < saved_world; r++) sum += ((const double *)f->data)[r];
        *(double *)dst = t->rank == 0 ? sum : 0;
    }
    return 0;
}

/* The loaded values into the trainer: scalars first (the RNG policy needs the step). */
static int apply_fields(trainer *t, loaded_state *s) {
    int saved_world = 0;
    for (int i = 0; i < TRAIN_STATE_N; i++) {
        const state_entry *e = &TRAIN_STATE[i];
        if (e->per_rank) continue;
        memcpy((char *)t + e->into, &s->vals[i], state_type_size(e->type));
        if (e->into == offsetof(trainer, resume_world)) saved_world = t->resume_world;
    }
    if (saved_world < 1) return -1;
    for (int i = 0; i < TRAIN_STATE_N; i++)
        if (TRAIN_STATE[i].per_rank && apply_per_rank(t, &TRAIN_STATE[i], &s->trainer[i], saved_world) != 0)
            return -1;
    return 0;
}

void train_state_free_loaded(loaded_state *s, int keep_job) {
    for (int i = 0; i < TRAIN_STATE_N; i++)
        if (TRAIN_STATE[i].per_rank) free(s->trainer[i].data);
    if (keep_job) return;
    for (int i = 0; i < s->njob; i++) free(s->job[i].data);
}

/* The tensors of every group, checked against the model (collective checks). */
static void load_tensors(trainer *t, ckpt *c, const char *path) {
    char err[1024];
    long held = ckpt_count(c, "params");
    trainer_check(t, held != t->model.ntensors, EXIT_USAGE, "cannot resume: %s is incompatible with this model: "
                  "its /params holds %ld tensors, the model has %d (do the shape keys match the checkpoint's?)",
                  path, held, t->model.ntensors);
    int n;
    float *host = host_groups(t, 0);
    ckpt_tensor *ts = state_tensors(t, host, &n);
    for (int i = 0; i < n; i++) {
        trainer_check(t, !ckpt_has(c, ts[i].group, ts[i].name), EXIT_USAGE, "cannot resume: %s is incompatible "
                      "with this model: it has no /%s/%s (was it written with another model or optimizer?)", path,
                      ts[i].group, ts[i].name);
        trainer_check(t, ckpt_read(c, &ts[i], err, sizeof err) != 0, EXIT_USAGE,
                      "cannot resume: %s is incompatible with this model: %s", path, err);
    }
    upload_groups(t, host);
    free(ts);
    free(host);
}

int train_state_read(ckpt *c, const job *j, loaded_state *s, char *err, size_t errlen) {
    int rc = ckpt_get_meta(c)->format_version == 1 ? read_fields_v1(c, j, s, err, errlen)
                                                   : read_fields(c, j, s, err, errlen);
    return rc == 0 ? check_state(c, s, err, errlen) : rc;
}

void train_state_load(trainer *t, ckpt *c, const char *path) {
    load_tensors(t, c, path);
    char err[1024] = "";
    loaded_state s;
    memset(&s, 0, sizeof s);
    int rc = train_state_read(c, t->job, &s, err, sizeof err);
    trainer_check(t, rc != 0, EXIT_USAGE, "cannot resume: %s", err);
    rc = apply_fields(t, &s);
    train_state_free_loaded(&s, 1);
    trainer_check(t, rc != 0, EXIT_USAGE, "cannot resume: %s: its training state is malformed", path);
    t->resume_fields = xcalloc((size_t)s.njob + 1, sizeof *t->resume_fields);
    memcpy(t->resume_fields, s.job, (size_t)s.njob * sizeof *s.job);
    t->resume_nfields = s.njob;
}

void train_state_free_resume(trainer *t) {
    for (int i = 0; i < t->resume_nfields; i++) free(t->resume_fields[i].data);
    free(t->resume_fields);
    t->resume_fields = NULL;
    t->resume_nfields = 0;
}

long train_state_step(ckpt *c, char *err, size_t errlen) {
    int64_t step = 0;
    ckpt_field f = {ckpt_get_meta(c)->format_version == 1 ? "" : "train_state", "step", CKPT_I64, 0, {0, 0}, &step};
    if (!ckpt_has_field(c, &f)) return 0;
    if (ckpt_read_field(c, &f, err, errlen) != 0) return -1;
    if (step < 0 || step >= STATE_COUNTER_MAX) {
        snprintf(err, errlen, "%s: training state: step = %lld, expected 0..%lld", ckpt_path(c), (long long)step,
                 STATE_COUNTER_MAX - 1);
        return -1;
    }
    return (long)step;
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
    size_t nf = t->model.nfloats;
    float *host = xcalloc(nf ? nf : 1, sizeof(float)); /* the padding between tensors stays 0 */
    for (int i = 0; i < t->model.ntensors; i++) {
        const tensor_info *ti = &t->model.tensors[i];
        ckpt_tensor ct = {group, ti->name, ti->ndim, {0}, host + ti->offset};
        memcpy(ct.shape, ti->shape, sizeof ti->shape);
        if (!ckpt_has(c, group, ti->name) || ckpt_read(c, &ct, err, sizeof err) != 0) {
            fprintf(stderr, "dtrain: %s does not fit this model: %s\n", ckpt_path,
                    ckpt_has(c, group, ti->name) ? err : "a tensor is missing");
            ckpt_close(c);
            free(host);
            return EXIT_USAGE;
        }
    }
    kernels_to_device(dst, host, nf * sizeof(float));
    free(host);
    t->step = train_state_step(c, err, sizeof err);
    ckpt_close(c);
    if (t->step < 0) {
        fprintf(stderr, "dtrain: %s\n", err);
        return EXIT_USAGE;
    }
    return 0;
}
