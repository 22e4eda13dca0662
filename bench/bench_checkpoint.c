/* bench_checkpoint: a checkpoint of ~100M parameters plus their Adam moments (3 x 400 MB),
 * written with ckpt_write and read back with ckpt_open + ckpt_read, against a plain
 * write(2) + fsync and read(2) of the same bytes in the same directory, in the same run.
 *
 *   bench_checkpoint [DIR=/tmp] [MILLION_PARAMS=100] [REPEATS=3]
 *
 * The best of REPEATS counts for each side. Before every read the page cache is dropped
 * when this process may (root), so that both sides read from the disk; the output says
 * which it was. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "util.h"

#define ROWS 2048
#define COLS 2048
#define NGROUPS 3
static const char *const GROUPS[NGROUPS] = {"params", "adam_m", "adam_v"};

typedef struct {
    int nmat;            /* [ROWS, COLS] matrices per group, plus one [COLS] bias each */
    size_t per_group;    /* floats per group */
    float *src[NGROUPS]; /* what is written */
    float *dst[NGROUPS]; /* what is read back */
    ckpt_tensor *tensors;
    int ntensors;
    char *name_buf; /* 32 bytes per tensor name: "h0.weight", "h0.bias", ... */
} model;

static void fill(float *p, size_t n, uint64_t seed) {
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (float)(int32_t)(x >> 32) * 1e-9f;
    }
}

/* The tensors as views into the src (or dst) buffers, laid out like the trainer's arenas. */
static void point_tensors(model *m, int use_dst) {
    int k = 0;
    for (int g = 0; g < NGROUPS; g++) {
        float *base = use_dst ? m->dst[g] : m->src[g];
        size_t off = 0;
        for (int i = 0; i < 2 * m->nmat; i++, k++) {
            ckpt_tensor *t = &m->tensors[k];
            t->group = GROUPS[g];
            t->name = m->name_buf + 32 * (size_t)i;
            int is_w = i % 2 == 0;
            t->ndim = is_w ? 2 : 1;
            t->shape[0] = is_w ? ROWS : COLS;
            t->shape[1] = is_w ? COLS : 0;
            t->data = base + off;
            off += is_w ? (size_t)ROWS * COLS : COLS;
        }
    }
}

static void model_init(model *m, double million_params) {
    memset(m, 0, sizeof *m);
    m->nmat = (int)(million_params * 1e6 / ((double)ROWS * COLS) + 0.5);
    if (m->nmat < 1) m->nmat = 1;
    m->per_group = (size_t)m->nmat * ((size_t)ROWS * COLS + COLS);
    m->ntensors = NGROUPS * 2 * m->nmat;
    m->tensors = xcalloc((size_t)m->ntensors, sizeof *m->tensors);
    m->name_buf = xcalloc((size_t)(2 * m->nmat), 32);
    for (int i = 0; i < 2 * m->nmat; i++)
        snprintf(m->name_buf + 32 * (size_t)i, 32, "h%d.%s", i / 2, i % 2 ? "bias" : "weight");
    for (int g = 0; g < NGROUPS; g++) {
        m->src[g] = xmalloc(m->per_group * sizeof(float));
        m->dst[g] = xmalloc(m->per_group * sizeof(float));
        fill(m->src[g], m->per_group, (uint64_t)g + 1);
        memset(m->dst[g], 0, m->per_group * sizeof(float)); /* touch: no page faults timed */
    }
}

static void model_free(model *m) {
    for (int g = 0; g < NGROUPS; g++) free(m->src[g]), free(m->dst[g]);
    free(m->tensors);
    free(m->name_buf);
}

static int check_equal(const model *m) {
    for (int g = 0; g < NGROUPS; g++)
        if (memcmp(m->src[g], m->dst[g], m->per_group * sizeof(float)) != 0) return -1;
    return 0;
}

static void clear_dst(model *m) {
    for (int g = 0; g < NGROUPS; g++) memset(m->dst[g], 0, m->per_group * sizeof(float));
}

/* 1 when the page cache was dropped, 0 when this process may not. Only clean pages are
 * dropped; both files were fsync'ed, so all of theirs are. */
static int drop_caches(void) {
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0) return 0;
    int ok = write(fd, "3\n", 2) == 2;
    close(fd);
    return ok;
}

/* ---- the plain reference ---------------------------------------------------------- */

static void plain_io(int fd, char *p, size_t n, int writing, const char *path) {
    while (n > 0) {
        ssize_t k = writing ? write(fd, p, n) : read(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            DIE("%s: %s: %s", path, writing ? "write" : "read", k < 0 ? strerror(errno) : "short");
        p += k;
        n -= (size_t)k;
    }
}

static double plain_write(const model *m, const char *path) {
    double t0 = now_sec();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) DIE("%s: %s", path, strerror(errno));
    for (int g = 0; g < NGROUPS; g++)
        plain_io(fd, (char *)m->src[g], m->per_group * sizeof(float), 1, path);
    if (fsync(fd) != 0) DIE("%s: fsync: %s", path, strerror(errno));
    close(fd);
    return now_sec() - t0;
}

static double plain_read(model *m, const char *path) {
    double t0 = now_sec();
    int fd = open(path, O_RDONLY);
    if (fd < 0) DIE("%s: %s", path, strerror(errno));
    for (int g = 0; g < NGROUPS; g++)
        plain_io(fd, (char *)m->dst[g], m->per_group * sizeof(float), 0, path);
    close(fd);
    return now_sec() - t0;
}

/* ---- the checkpoint ------------------------------------------------------------------ */

static double ckpt_write_timed(model *m, const char *dir) {
    uint64_t rng[4] = {1, 2, 3, 4};
    int64_t step = 1000;
    double lr = 3e-4;
    const ckpt_field fields[] = {{"train_state", "step", CKPT_I64, 0, {0, 0}, &step},
                                 {"train_state", "lr", CKPT_F64, 0, {0, 0}, &lr},
                                 {"train_state", "rng", CKPT_U64, 2, {1, 4}, rng}};
    ckpt_meta meta = {.job = "bench", .config_text = "model = bench\n", .fields = fields, .nfields = 3};
    char err[512];
    point_tensors(m, 0);
    double t0 = now_sec();
    if (ckpt_write(dir, "ckpt-00001000", &meta, m->tensors, m->ntensors, 1, err, sizeof err))
        DIE("%s", err);
    return now_sec() - t0;
}

static void ckpt_read_timed(model *m, const char *path, double *t_open, double *t_read) {
    char err[512];
    point_tensors(m, 1);
    double t0 = now_sec();
    ckpt *c = ckpt_open(path, err, sizeof err);
    if (!c) DIE("%s", err);
    double t1 = now_sec();
    for (int i = 0; i < m->ntensors; i++)
        if (ckpt_read(c, &m->tensors[i], err, sizeof err)) DIE("%s", err);
    ckpt_close(c);
    *t_open = t1 - t0;
    *t_read = now_sec() - t1;
}

static double min2(double a, double b) { return a < b ? a : b; }

int main(int argc, char **argv) {
    const char *base = argc > 1 ? argv[1] : "/tmp";
    double mparams = argc > 2 ? atof(argv[2]) : 100;
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    char dir[4096], plain[4200], ck[4200];
    snprintf(dir, sizeof dir, "%s/dtrain_bench_ckpt_XXXXXX", base);
    if (!mkdtemp(dir)) DIE("%s: %s", dir, strerror(errno));
    snprintf(plain, sizeof plain, "%s/plain.bin", dir);
    snprintf(ck, sizeof ck, "%s/ckpt-00001000.h5", dir);

    model m;
    model_init(&m, mparams);
    double mb = (double)NGROUPS * (double)m.per_group * sizeof(float) / 1e6;
    double pw = 1e30, cw = 1e30, pr = 1e30, co = 1e30, cr = 1e30, ct = 1e30;
    int cold = 1;
    /* the order alternates, so that neither side always runs on a cache or a disk the
     * other has just stirred up */
    for (int r = 0; r < reps; r++) {
        if (r % 2 == 0) pw = min2(pw, plain_write(&m, plain));
        cw = min2(cw, ckpt_write_timed(&m, dir));
        if (r % 2 == 1) pw = min2(pw, plain_write(&m, plain));
        for (int k = 0; k < 2; k++) {
            cold &= drop_caches();
            if ((k + r) % 2 == 0) {
                pr = min2(pr, plain_read(&m, plain));
            } else {
                double o, rd;
                ckpt_read_timed(&m, ck, &o, &rd);
                co = min2(co, o);
                cr = min2(cr, rd);
                ct = min2(ct, o + rd);
            }
            if (check_equal(&m)) DIE("%s read back differs", (k + r) % 2 ? "checkpoint" : "plain");
            clear_dst(&m);
        }
        unlink(plain);
        unlink(ck);
    }
    char latest[4200];
    snprintf(latest, sizeof latest, "%s/latest", dir);
    unlink(latest);
    rmdir(dir);

    printf("checkpoint: %.1fM params x %d buffers = %.0f MB in %s, best of %d, reads %s\n",
           (double)m.per_group / 1e6, NGROUPS, mb, base, reps,
           cold ? "cold (page cache dropped)" : "warm (page cache NOT dropped: not permitted)");
    printf("write  plain %7.0f MB/s   ckpt_write %7.0f MB/s   ratio %.2f\n", mb / pw, mb / cw,
           pw / cw);
    printf("read   plain %7.0f MB/s   ckpt open+read %7.0f MB/s   ratio %.2f"
           "   (open+verify %.2f s, read %.2f s)\n",
           mb / pr, mb / ct, pr / ct, co, cr);
    model_free(&m);
    return 0;
}
