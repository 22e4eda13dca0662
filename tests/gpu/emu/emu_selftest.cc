/* emu_selftest.cc: the emulator's own behaviour, one case per ctest entry (emu_<case>):
 * barriers and shuffles give what a GPU gives, a divergent barrier and a host pointer
 * passed to a kernel are reported (not hung), host code touching device memory faults,
 * every memcpy kind is checked, streams and events order work, and cuBLAS is column-major
 * with its leading dimensions and strides. Cases that must die run in a forked child;
 * the parent checks the signal and the message. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "cuda_emu.h"

static int g_failed;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
            g_failed = 1;                                                      \
        }                                                                      \
    } while (0)

static float *dev_floats(size_t n) {
    void *p = NULL;
    if (cudaMalloc(&p, n * sizeof(float)) != cudaSuccess) {
        fprintf(stderr, "cudaMalloc failed\n");
        exit(1);
    }
    return (float *)p;
}

/* Runs fn in a child with stderr captured; returns the terminating signal (0 if it
 * exited) and what it printed. */
static int in_child(void (*fn)(void), std::string *err) {
    int fd[2];
    if (pipe(fd)) exit(1);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) exit(1);
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        fn();
        _exit(0);
    }
    close(fd[1]);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd[0], buf, sizeof buf)) > 0) err->append(buf, (size_t)n);
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
}

/* ---- barrier ----------------------------------------------------------------------- */

/* each thread reads what the mirror thread wrote before the barrier; 2-D blocks */
static __global__ void mirror_k(float *out) {
    __shared__ float sh[256];
    int t = (int)(threadIdx.y * blockDim.x + threadIdx.x), n = (int)(blockDim.x * blockDim.y);
    sh[t] = (float)(t + 1000 * (int)blockIdx.x);
    __syncthreads();
    float v = sh[n - 1 - t];
    __syncthreads(); /* nobody overwrites sh before all have read */
    sh[t] = v * 2;
    __syncthreads();
    out[blockIdx.x * n + t] = sh[t];
}

static void case_barrier(void) {
    const int blocks = 3, n = 256;
    float *d = dev_floats(blocks * n), h[blocks * n];
    emu_launch("mirror_k", mirror_k, dim3(blocks), dim3(32, 8), (cudaStream_t)NULL, d);
    CHECK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int b = 0; b < blocks; b++)
        for (int t = 0; t < n; t++) CHECK(h[b * n + t] == 2.0f * (float)(n - 1 - t + 1000 * b));
    cudaFree(d);
}

/* ---- divergent barriers ---------------------------------------------------------------- */

static __global__ void early_exit_k(float *out) {
    if (threadIdx.x == 5) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

/* different work after each barrier, so the compiler cannot merge the two calls */
static __global__ void two_barriers_k(float *out) {
    if (threadIdx.x < 32) {
        __syncthreads();
        out[threadIdx.x] = 1.0f;
    } else {
        __syncthreads();
        out[threadIdx.x] = 2.0f * out[0];
    }
}

/* lane 3 of the first warp leaves before a shuffle the others make (the second warp
 * completes its shuffle and exits) */
static __global__ void shuffle_exit_k(float *out) {
    if (threadIdx.x == 3) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 1);
}

static void run_shuffle_exit(void) {
    emu_launch("shuffle_exit_k", shuffle_exit_k, dim3(1), dim3(64), (cudaStream_t)NULL,
               dev_floats(64));
}

static void run_early_exit(void) {
    emu_launch("early_exit_k", early_exit_k, dim3(1), dim3(64), (cudaStream_t)NULL, dev_floats(64));
}
static void run_two_barriers(void) {
    emu_launch("two_barriers_k", two_barriers_k, dim3(1), dim3(64), (cudaStream_t)NULL,
               dev_floats(64));
}

static void case_divergent(void) {
    std::string err;
    CHECK(in_child(run_early_exit, &err) == SIGABRT);
    CHECK(err.find("early_exit_k") != std::string::npos);
    CHECK(err.find("divergent barrier") != std::string::npos);
    fprintf(stderr, "early exit: %s", err.c_str());
    err.clear();
    CHECK(in_child(run_two_barriers, &err) == SIGABRT);
    CHECK(err.find("two_barriers_k") != std::string::npos);
    CHECK(err.find("different __syncthreads") != std::string::npos);
    fprintf(stderr, "two barriers: %s", err.c_str());
    err.clear();
    CHECK(in_child(run_shuffle_exit, &err) == SIGABRT);
    CHECK(err.find("shuffle_exit_k") != std::string::npos);
    CHECK(err.find("31 at a warp shuffle, 33 have exited") != std::string::npos);
    fprintf(stderr, "shuffle: %s", err.c_str());
}

/* ---- shuffles ---------------------------------------------------------------------- */

static __global__ void shuffle_k(float *sum, float *bcast, float *rot) {
    float v = (float)(threadIdx.x * threadIdx.x);
    float s = v;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    sum[threadIdx.x] = s;
    bcast[threadIdx.x] = __shfl_sync(0xffffffffu, v, 7);
    rot[threadIdx.x] = __shfl_sync(0xffffffffu, v, (int)(threadIdx.x + 1) & 31);
}

static void case_shuffle(void) {
    const int n = 64;
    float *ds = dev_floats(n), *db = dev_floats(n), *dr = dev_floats(n);
    float s[n], b[n], r[n];
    emu_launch("shuffle_k", shuffle_k, dim3(1), dim3(n), (cudaStream_t)NULL, ds, db, dr);
    cudaMemcpy(s, ds, sizeof s, cudaMemcpyDeviceToHost);
    cudaMemcpy(b, db, sizeof b, cudaMemcpyDeviceToHost);
    cudaMemcpy(r, dr, sizeof r, cudaMemcpyDeviceToHost);
    for (int t = 0; t < n; t++) {
        int w = t / 32 * 32;
        float want = 0;
        for (int l = 0; l < 32; l++) want += (float)((w + l) * (w + l));
        CHECK(s[t] == want); /* exact: small integers */
        CHECK(b[t] == (float)((w + 7) * (w + 7)));
        int src = w + ((t + 1) & 31);
        CHECK(r[t] == (float)(src * src));
    }
}

/* ---- host access of device memory, host pointers to kernels ------------------------------- */

static __global__ void fill_k(float *out, float v) { out[threadIdx.x] = v; }

static float *g_dev;
static void touch_before(void) { g_dev[0] = 1.0f; }
static void read_after_kernel(void) {
    emu_launch("fill_k", fill_k, dim3(1), dim3(32), (cudaStream_t)NULL, g_dev, 3.0f);
    volatile float x = g_dev[1];
    (void)x;
}
static void host_arg(void) {
    static float host[32];
    emu_launch("fill_k", fill_k, dim3(1), dim3(32), (cudaStream_t)NULL, host, 1.0f);
}

static void case_host_touch(void) {
    g_dev = dev_floats(32);
    std::string err;
    CHECK(in_child(touch_before, &err) == SIGSEGV);
    CHECK(in_child(read_after_kernel, &err) == SIGSEGV);
    float h[32];
    emu_launch("fill_k", fill_k, dim3(1), dim3(32), (cudaStream_t)NULL, g_dev, 3.0f);
    CHECK(cudaMemcpy(h, g_dev, sizeof h, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(h[31] == 3.0f);
}

static void case_host_arg(void) {
    std::string err;
    CHECK(in_child(host_arg, &err) == SIGABRT);
    CHECK(err.find("fill_k") != std::string::npos && err.find("host pointer") != std::string::npos);
    fprintf(stderr, "host pointer: %s", err.c_str());
}

/* ---- memcpy kinds ------------------------------------------------------------------------- */

static void case_memcpy_kinds(void) {
    float *d = dev_floats(16), *d2 = dev_floats(16), h[16], h2[16];
    for (int i = 0; i < 16; i++) h[i] = (float)i;
    CHECK(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemcpy(h2, d, sizeof h, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue && cudaGetLastError() == cudaSuccess);
    CHECK(cudaMemcpy(d, h, sizeof h, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
    CHECK(cudaMemcpy(d2, h, sizeof h, cudaMemcpyDeviceToDevice) == cudaErrorInvalidValue);
    CHECK(cudaMemcpy(h2, h, sizeof h, cudaMemcpyHostToHost) == cudaSuccess);
    CHECK(cudaMemcpy(d, h, sizeof h + 4096, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    CHECK(cudaMemcpy(d2, d, sizeof h, cudaMemcpyDeviceToDevice) == cudaSuccess);
    memset(h2, 0, sizeof h2);
    CHECK(cudaMemcpy(h2, d2, sizeof h2, cudaMemcpyDefault) == cudaSuccess);
    CHECK(memcmp(h, h2, sizeof h) == 0);
    float *pinned = NULL;
    CHECK(cudaMallocHost((void **)&pinned, sizeof h) == cudaSuccess);
    CHECK(cudaMemcpyAsync(pinned, d2, sizeof h, cudaMemcpyDeviceToHost, NULL) == cudaSuccess);
    CHECK(cudaStreamSynchronize(NULL) == cudaSuccess && pinned[15] == 15.0f);
    CHECK(cudaFree(h) == cudaErrorInvalidValue);
    CHECK(cudaFreeHost(pinned) == cudaSuccess);
    CHECK(cudaFree(d) == cudaSuccess && cudaFree(d2) == cudaSuccess);
}

/* ---- streams and events ------------------------------------------------------------------ */

static __global__ void copy1_k(float *dst, const float *src) {
    if (threadIdx.x == 0) dst[0] = src[0];
}

static void case_events(void) {
    cudaStream_t a, b, nb;
    cudaEvent_t ev, done;
    CHECK(cudaStreamCreate(&a) == cudaSuccess && cudaStreamCreate(&b) == cudaSuccess);
    CHECK(cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking) == cudaSuccess);
    CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) == cudaSuccess);
    CHECK(cudaEventCreate(&done) == cudaSuccess);
    CHECK(cudaEventQuery(ev) == cudaSuccess); /* never recorded: counts as happened */
    float *x = dev_floats(1), *y = dev_floats(1), *pin = NULL;
    CHECK(cudaMallocHost((void **)&pin, 2 * sizeof(float)) == cudaSuccess);
    pin[0] = pin[1] = -1.0f;

    /* b waits on the device for a's work: nothing runs until a is released */
    emu_stream_hold(a, 1);
    emu_launch("fill_k", fill_k, dim3(1), dim3(32), a, x, 7.0f);
    CHECK(cudaEventRecord(ev, a) == cudaSuccess);
    CHECK(cudaStreamWaitEvent(b, ev, 0) == cudaSuccess);
    emu_launch("copy1_k", copy1_k, dim3(1), dim3(32), b, y, (const float *)x);
    CHECK(cudaMemcpyAsync(pin, y, sizeof(float), cudaMemcpyDeviceToHost, b) == cudaSuccess);
    CHECK(cudaEventRecord(done, b) == cudaSuccess);
    CHECK(cudaEventQuery(ev) == cudaErrorNotReady);
    CHECK(cudaEventQuery(done) == cudaErrorNotReady && cudaStreamQuery(b) == cudaErrorNotReady);
    CHECK(pin[0] == -1.0f);
    /* a non-blocking stream does not wait for anything it was not told to */
    CHECK(cudaMemsetAsync(y, 0, sizeof(float), nb) == cudaSuccess && cudaStreamQuery(nb) == cudaSuccess);
    /* the legacy stream waits for the blocking streams */
    CHECK(cudaMemcpyAsync(pin + 1, x, sizeof(float), cudaMemcpyDeviceToHost, NULL) == cudaSuccess);
    CHECK(cudaStreamQuery(NULL) == cudaErrorNotReady && pin[1] == -1.0f);
    emu_stream_hold(a, 0);
    CHECK(cudaEventSynchronize(done) == cudaSuccess);
    CHECK(pin[0] == 7.0f);
    CHECK(cudaStreamSynchronize(NULL) == cudaSuccess && pin[1] == 7.0f);
    /* a wait takes the event's position when it is made: recording again later on a held
     * stream does not hold back a wait made before */
    emu_stream_hold(a, 1);
    CHECK(cudaStreamWaitEvent(b, ev, 0) == cudaSuccess);
    CHECK(cudaEventRecord(ev, a) == cudaSuccess);
    CHECK(cudaStreamQuery(b) == cudaSuccess && cudaEventQuery(ev) == cudaErrorNotReady);
    emu_stream_hold(a, 0);
    CHECK(cudaDeviceSynchronize() == cudaSuccess && cudaEventQuery(ev) == cudaSuccess);
    cudaEventDestroy(ev);
    cudaEventDestroy(done);
    cudaStreamDestroy(a);
    cudaStreamDestroy(b);
    cudaStreamDestroy(nb);
    cudaFreeHost(pin);
}

/* ---- cuBLAS: column-major, leading dimensions, strided batches ----------------------------- */

/* reference: C (m x n, ldc) = alpha op(A) op(B) + beta C, column-major */
static void ref_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int l = 0; l < k; l++) {
                double a = ta ? A[i * lda + l] : A[l * lda + i];
                double b = tb ? B[l * ldb + j] : B[j * ldb + l];
                s += a * b;
            }
            C[j * ldc + i] = (float)(alpha * s + beta * (double)C[j * ldc + i]);
        }
}

static void case_gemm(void) {
    cublasHandle_t h;
    CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
    const int m = 5, n = 3, k = 4, ld = 7, batch = 3, stride = ld * 7;
    float hA[batch * stride], hB[batch * stride], hC[batch * stride], want[batch * stride],
        got[batch * stride];
    for (int i = 0; i < batch * stride; i++) {
        hA[i] = (float)((i * 7) % 11) - 5.0f;
        hB[i] = (float)((i * 5) % 13) - 6.0f;
        hC[i] = (float)(i % 3);
    }
    float *dA = dev_floats(batch * stride), *dB = dev_floats(batch * stride),
          *dC = dev_floats(batch * stride);
    cudaMemcpy(dA, hA, sizeof hA, cudaMemcpyHostToDevice);
    cudaMemcpy(dB, hB, sizeof hB, cudaMemcpyHostToDevice);
    float alpha = 1.5f, beta = 0.5f;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            cudaMemcpy(dC, hC, sizeof hC, cudaMemcpyHostToDevice);
            memcpy(want, hC, sizeof hC);
            for (int b = 0; b < batch; b++)
                ref_gemm(ta, tb, m, n, k, alpha, hA + b * stride, ld, hB + b * stride, ld, beta,
                         want + b * stride, ld);
            CHECK(cublasSgemmStridedBatched(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, dA,
                                            ld, stride, dB, ld, stride, &beta, dC, ld, stride,
                                            batch) == CUBLAS_STATUS_SUCCESS);
            cudaMemcpy(got, dC, sizeof got, cudaMemcpyDeviceToHost);
            CHECK(memcmp(got, want, sizeof got) == 0); /* untouched padding included */
        }
    /* lda below the stored rows is rejected, as by cuBLAS */
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA, m - 1, dB, ld, &beta, dC,
                      ld) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, dA, k - 1, dB, ld, &beta, dC,
                      ld) == CUBLAS_STATUS_INVALID_VALUE);
    /* a host matrix is not device memory */
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, hA, ld, dB, ld, &beta, dC,
                      ld) == CUBLAS_STATUS_EXECUTION_FAILED);
    cublasDestroy(h);
}

int main(int argc, char **argv) {
    struct {
        const char *name;
        void (*fn)(void);
    } cases[] = {{"barrier", case_barrier},         {"divergent", case_divergent},
                 {"shuffle", case_shuffle},         {"host_touch", case_host_touch},
                 {"host_arg", case_host_arg},       {"memcpy_kinds", case_memcpy_kinds},
                 {"events", case_events},           {"gemm", case_gemm}};
    int ran = 0;
    for (auto &c : cases)
        if (argc < 2 || !strcmp(argv[1], c.name)) {
            c.fn();
            printf("%s %s\n", g_failed ? "FAIL" : "ok  ", c.name);
            ran++;
        }
    if (!ran) {
        fprintf(stderr, "emu_selftest: no case named '%s'\n", argv[1]);
        return 2;
    }
    return g_failed;
}
