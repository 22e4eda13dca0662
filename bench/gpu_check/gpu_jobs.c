/* gpu_jobs.c: the job-level half of bench/gpu_check.sh (issue 15, item 6).
 *
 *   gpu_jobs gpt2 [--tf32] [--batch B] [--steps N] [--cublas-tflops X] [--tiny] [--device D]
 *       GPT-2 124M shapes (12 layers, 12 heads, 768 channels, V 50257 padded to 50304,
 *       T 1024, batch 16): forward, backward and AdamW with peak memory, time per phase and
 *       per op, tokens/s and achieved TFLOP/s (gj_gpt2.c). Device: cuda unless given.
 *   gpu_jobs train JOB [--steps N] [--batch B] [--curve FILE] [--tiny] [--device D]
 *                  [--tol R] [--tight K] [--window W] [--window-tol R2]
 *       JOB (classify, gpt, diffusion) for N steps (300; diffusion 200) on cpu and on cuda from the same
 *       initialisation and batches (gj_train.c). The loss curves must agree in two ways:
 *       at each of the first K steps (100), |loss_cuda - loss_cpu| <= R |loss_cpu| (1e-3);
 *       and over the whole run, the mean loss of each window of W steps (50) within R2
 *       (5e-2) relative. Step by step agreement cannot last: the two backends sum in
 *       different orders, and Adam and small losses amplify an ulp into a different
 *       trajectory. Measured on the CPU with a relative noise of 1e-6 on every gradient
 *       (about the size of a reordered fp32 sum): classify's first step beyond 1e-3 was
 *       step 155 (175 with 1e-5 noise), gpt's and diffusion's stayed within 2e-7; window
 *       means parted by 1.5e-2 at most (1.9e-2 with 1e-4 noise). Then images/s or
 *       tokens/s on both. D = both (the default) compares; cpu or cuda runs one side only
 *       (with --curve, its losses go to FILE).
 * Common: --data DIR (the repository's data/, the default is the source tree's),
 * --threads N (CPU backend threads, default: the machine's cores).
 *
 * Each process binds one backend before its first allocation, as dtrain does (cuda: GPU 0
 * of those visible, so CUDA_VISIBLE_DEVICES picks it; kernels/device.h), so the cpu half of
 * a comparison runs in a child process (fork, before any kernels call) and sends its curve
 * back through a pipe. On cuda it first prints the GPU's name and memory.
 *
 * Exit status: 0 every check passed, 1 a check failed, 2 bad usage or missing data. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "device.h"
#include "gpu_jobs.h"
#include "kernels.h"
#include "util.h"

#ifndef GJ_DATA_DIR
#define GJ_DATA_DIR "data"
#endif

static int usage(const char *why) {
    fprintf(stderr,
            "gpu_jobs: %s\n"
            "usage: gpu_jobs gpt2 [--tf32] [--batch B] [--steps N] [--cublas-tflops X] [--tiny] [--device D]\n"
            "       gpu_jobs train classify|gpt|diffusion [--steps N] [--batch B] [--curve FILE] [--tiny]\n"
            "                [--device cpu|cuda|both] [--tol R] [--tight K] [--window W] [--window-tol R2]\n"
            "common: --data DIR, --threads N\n",
            why);
    return 2;
}

/* ---- the device ----------------------------------------------------------------------- */

/* The device comes from kernels/device.h, as in dtrain: every flavour of the kernels'
 * dispatch defines it (CPU only: kernels_cuda_built() is 0). Device memory is read from
 * the CUDA runtime (real, or the emulator's), so only a build with CUDA defines GJ_CUDA. */
#ifdef GJ_CUDA
#include <cuda_runtime_api.h>
#endif

const char *gj_device_name(void) { return kernels_device_name(); }

/* free and total device memory, or -1 on the CPU (and when the runtime cannot say) */
static int mem_info(double *free_b, double *total_b) {
    *free_b = *total_b = -1;
#ifdef GJ_CUDA
    size_t f = 0, t = 0;
    if (kernels_on_cuda() && cudaMemGetInfo(&f, &t) == cudaSuccess) {
        *free_b = (double)f, *total_b = (double)t;
        return 0;
    }
#endif
    return -1;
}

double gj_device_used_bytes(void) {
    double f, t;
    return mem_info(&f, &t) ? -1 : t - f;
}

double gj_device_free_bytes(void) {
    double f, t;
    return mem_info(&f, &t) ? -1 : f;
}

/* Whether cuda can be bound, without binding it: asked before the cpu half of a comparison
 * runs, so that a machine without a usable GPU fails in a second, not after the cpu half. */
static int cuda_usable(void) {
    if (!kernels_cuda_built()) {
        fprintf(stderr, "gpu_jobs: --device cuda: this build has no CUDA backend\n");
        return 0;
    }
    if (kernels_cuda_devices() < 1) {
        fprintf(stderr, "gpu_jobs: --device cuda: the CUDA runtime sees no GPU (driver, "
                        "CUDA_VISIBLE_DEVICES)\n");
        return 0;
    }
    return 1;
}

/* Binds `dev` ("cpu" or "cuda": GPU 0 of those visible) before the first allocation, and
 * says which GPU and how much memory it has. 0, or -1 with the reason. */
static int bind_device(const char *dev, const gj_opts *o) {
    kernels_set_threads(o->threads);
    if (!strcmp(dev, "cpu")) return 0;
    if (!cuda_usable()) return -1;
    char why[256];
    if (kernels_use_cuda(0, o->tf32, why, sizeof why)) {
        fprintf(stderr, "gpu_jobs: --device cuda: %s\n", why);
        return -1;
    }
    kernels_set_threads(o->threads); /* the host-side work on cuda (kernels.h) */
    double f, t;
    printf("device: cuda, GPU 0 of %d visible: %s%s, %s GEMMs", kernels_cuda_devices(),
           kernels_device_name(), kernels_cuda_emulated() ? " (the emulator)" : "",
           o->tf32 ? "TF32" : "fp32");
    if (!mem_info(&f, &t))
        printf(", memory %.2f GiB, %.2f GiB free", t / (1024.0 * 1024 * 1024),
               f / (1024.0 * 1024 * 1024));
    printf("\n");
    fflush(stdout);
    return 0;
}

/* ---- the comparison ------------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w, n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n) {
    char *c = p;
    while (n > 0) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        c += r, n -= (size_t)r;
    }
    return 0;
}

/* One side of the comparison in this process. 0, or 2 (the data is missing or bad). */
static int one_side(const char *job, const char *dev, const gj_opts *o, gj_curve *c) {
    char err[512];
    if (bind_device(dev, o)) return 2;
    if (gj_train(job, o, c, err, sizeof err)) {
        fprintf(stderr, "gpu_jobs: %s on %s: %s\n", job, dev, err);
        return 2;
    }
    return 0;
}

/* The cpu side in a child process; its curve comes back through a pipe. */
static int cpu_side_in_child(const char *job, const gj_opts *o, gj_curve *c) {
    int fd[2];
    if (pipe(fd)) DIE("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) DIE("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fd[0]);
        int rc = one_side(job, "cpu", o, c);
        if (rc == 0 && (write_all(fd[1], c, sizeof *c) ||
                        write_all(fd[1], c->loss, (size_t)c->steps * sizeof *c->loss)))
            rc = 1;
        _exit(rc);
    }
    close(fd[1]);
    int steps = c->steps, bad = read_all(fd[0], c, sizeof *c);
    c->loss = xcalloc((size_t)steps, sizeof *c->loss);
    if (!bad) bad = c->steps != steps || read_all(fd[0], c->loss, (size_t)steps * sizeof *c->loss);
    close(fd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) DIE("waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "gpu_jobs: the cpu run of %s failed (%s %d)\n", job,
                WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return WIFEXITED(status) && WEXITSTATUS(status) == 2 ? 2 : 1;
    }
    return bad ? 1 : 0;
}

static void print_side(const char *dev, const char *unit, const gj_curve *c) {
    printf("  %-4s %12.1f %s/s   (%d steps in %.2f s; first loss %.6f, last %.6f; sum |params| %.6g)\n",
           dev, c->items_per_s, unit, c->steps, c->seconds, c->loss[0], c->loss[c->steps - 1],
           c->param_digest);
}

static int compare_curves(const char *job, const char *device, const gj_opts *o, const char *curve, gj_curve *cpu,
                          gj_curve *gpu) {
    const char *unit;
    int cmp = !strcmp(device, "both");
    if (cmp && !cuda_usable()) return 2;
    if (cmp || !strcmp(device, "cpu")) {
        int rc = cmp ? cpu_side_in_child(job, o, cpu) : one_side(job, "cpu", o, cpu);
        if (rc) return rc;
    }
    if (cmp || !strcmp(device, "cuda")) {
        int rc = one_side(job, "cuda", o, gpu);
        if (rc) return rc;
    }
    gj_job_known(job, &unit);
    printf("%s: %d steps, %s\n", job, o->steps, o->tiny ? "tiny shapes" : "the job's recipe");
    if (!cmp) {
        const gj_curve *c = cpu->loss ? cpu : gpu;
        print_side(cpu->loss ? "cpu" : "cuda", unit, c);
        FILE *f = curve ? fopen(curve, "w") : NULL;
        if (curve && !f) fprintf(stderr, "gpu_jobs: %s: cannot write the curve\n", curve);
        if (f) {
            fprintf(f, "step\t%s\n", cpu->loss ? "cpu" : "cuda");
            for (int k = 0; k < c->steps; k++) fprintf(f, "%d\t%.9g\n", k + 1, c->loss[k]);
            fclose(f);
        }
        for (int k = 0; k < c->steps; k++) if (!isfinite(c->loss[k])) {
            printf("FAIL %s: loss %g at step %d\n", job, c->loss[k], k + 1);
            return 1;
        }
        return 0;
    }
    FILE *f = curve ? fopen(curve, "w") : NULL;
    if (curve && !f) fprintf(stderr, "gpu_jobs: %s: cannot write the curve\n", curve);
    if (f) fprintf(f, "step\tcpu\tcuda\trel_diff\n");
    /* 1. step by step, while rounding has not compounded: the first o->tight steps */
    int tight = o->tight < o->steps ? o->tight : o->steps, bad = 0, worst_k = 0;
    int every = o->steps >= 20 ? o->steps / 10 : 1;
    double worst = 0;
    printf("  step      cpu loss     cuda loss   rel diff\n");
    for (int k = 0; k < o->steps; k++) {
        double a = cpu->loss[k], b = gpu->loss[k], rel = fabs(b - a) / fmax(fabs(a), 1e-30);
        if (!isfinite(b) || !isfinite(a)) rel = INFINITY;
        if (k < tight && !(rel <= worst)) worst = rel, worst_k = k;
        if (k < tight && !(rel <= o->tol)) bad++;
        if (f) fprintf(f, "%d\t%.9g\t%.9g\t%.3g\n", k + 1, a, b, rel);
        if (k % every == 0 || k == o->steps - 1)
            printf("  %5d  %12.6f  %12.6f   %.2e\n", k + 1, a, b, rel);
    }
    if (f) fclose(f);
    printf("  steps 1-%d, each: largest relative difference %.2e (step %d), tolerance %.0e: %s", tight,
           worst, worst_k + 1, o->tol, bad ? "FAIL" : "ok");
    if (bad) printf(" (%d steps outside)", bad);
    printf("\n");
    /* 2. the whole run, as means over windows: later the two runs part ways step by step
     * (an ulp's difference is amplified by Adam and small losses) but must train alike */
    int wbad = 0;
    double wworst = 0;
    for (int w = 0; w < o->steps; w += o->window) {
        int n = o->steps - w < o->window ? o->steps - w : o->window;
        double ma = 0, mb = 0;
        for (int k = w; k < w + n; k++) ma += cpu->loss[k], mb += gpu->loss[k];
        ma /= n, mb /= n;
        double rel = fabs(mb - ma) / fmax(fabs(ma), 1e-30);
        if (!(rel <= o->window_tol)) wbad++;
        if (!(rel <= wworst)) wworst = rel;
        printf("  mean of steps %d-%d: cpu %.6f, cuda %.6f, rel diff %.2e\n", w + 1, w + n, ma, mb, rel);
    }
    printf("  windows of %d steps: largest relative difference %.2e, tolerance %.0e: %s\n", o->window,
           wworst, o->window_tol, wbad ? "FAIL" : "ok");
    print_side("cpu", unit, cpu);
    print_side("cuda", unit, gpu);
    printf("%s %s: cuda against cpu over %d steps\n", bad || wbad ? "FAIL" : "ok  ", job, o->steps);
    return bad || wbad ? 1 : 0;
}

/* The comparison, with the curves freed on every path (an early return left them behind:
 * scripts/sanitize.sh). */
static int compare(const char *job, const char *device, const gj_opts *o, const char *curve) {
    gj_curve cpu = {.steps = o->steps}, gpu = {.steps = o->steps};
    int rc = compare_curves(job, device, o, curve, &cpu, &gpu);
    free(cpu.loss);
    free(gpu.loss);
    return rc;
}

/* ---- the command line ----------------------------------------------------------------- */

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "gpu_jobs: %s '%s': expected an integer %d..%d\n", flag, v ? v : "", lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_double(const char *flag, const char *v, double lo, double hi, double *out) {
    char *end;
    double x = v ? strtod(v, &end) : 0;
    if (!v || *end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, "gpu_jobs: %s '%s': expected a number in [%g, %g]\n", flag, v ? v : "", lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage("no mode");
    const char *mode = argv[1], *job = NULL, *device = NULL, *curve = NULL;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    gj_opts o = {.threads = cores > 0 ? (int)cores : 1, .tol = 1e-3, .tight = 100, .window = 50,
                 .window_tol = 5e-2, .data_dir = GJ_DATA_DIR};
    int i = 2;
    if (!strcmp(mode, "train")) {
        const char *unit;
        if (argc < 3 || !gj_job_known(argv[2], &unit))
            return usage("train: expected a job: classify, gpt or diffusion");
        job = argv[i++];
    } else if (strcmp(mode, "gpt2")) {
        return usage("the mode must be gpt2 or train");
    }
    for (; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--tiny")) o.tiny = 1;
        else if (!strcmp(a, "--tf32")) o.tf32 = 1;
        else if (!strcmp(a, "--steps")) bad = parse_int(a, v, 2, 1000000, &o.steps), i++;
        else if (!strcmp(a, "--batch")) bad = parse_int(a, v, 1, 4096, &o.batch), i++;
        else if (!strcmp(a, "--threads")) bad = parse_int(a, v, 1, 1024, &o.threads), i++;
        else if (!strcmp(a, "--tol")) bad = parse_double(a, v, 0, 1, &o.tol), i++;
        else if (!strcmp(a, "--tight")) bad = parse_int(a, v, 1, 1000000, &o.tight), i++;
        else if (!strcmp(a, "--window")) bad = parse_int(a, v, 1, 1000000, &o.window), i++;
        else if (!strcmp(a, "--window-tol")) bad = parse_double(a, v, 0, 1, &o.window_tol), i++;
        else if (!strcmp(a, "--cublas-tflops")) bad = parse_double(a, v, 0, 1e6, &o.cublas_tflops), i++;
        else if (!strcmp(a, "--data") && v) o.data_dir = v, i++;
        else if (!strcmp(a, "--curve") && v) curve = v, i++;
        else if (!strcmp(a, "--device") && v) device = v, i++;
        else {
            fprintf(stderr, "gpu_jobs: unknown or incomplete option '%s'\n", a);
            return usage("bad option");
        }
        if (bad) return 2;
    }
    if (!strcmp(mode, "gpt2")) {
        if (!device) device = "cuda";
        if (strcmp(device, "cpu") && strcmp(device, "cuda"))
            return usage("gpt2: --device must be cpu or cuda");
        if (bind_device(device, &o)) return 2;
        return gj_gpt2(&o);
    }
    if (!device) device = "both";
    if (strcmp(device, "cpu") && strcmp(device, "cuda") && strcmp(device, "both"))
        return usage("train: --device must be cpu, cuda or both");
    if (!o.steps) o.steps = gj_job_default_steps(job, o.tiny);
    return compare(job, device, &o, curve);
}
