/* backend.cu: the CUDA backend's context (device, stream, cuBLAS handle, workspace),
 * memory, copies, GEMM entry points and the device error bits. */
#include <pthread.h>
#include <string.h>

#include "common.cuh"

/* One context per process, like the CPU backend's thread count: CUDA binds a process (or
 * thread) to a device, so there is one device, one stream and one cuBLAS handle to share.
 * Created on first use, so a CPU-only run never touches the driver. */
typedef struct {
    double val;    /* the last device reduction */
    int err;       /* CU_ERR_* bits */
} dev_scalars;

static struct {
    cudaStream_t stream;
    cublasHandle_t blas;
    float *ws;
    size_t ws_floats;
    dev_scalars *scalars;
} g;
static int g_device = -1; /* set before init by cuda_kernels_set_device */
static int g_tf32;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

void cu_die(const char *what, const char *file, int line, const char *why) {
    fprintf(stderr, "dtrain: cuda: %s failed at %s:%d: %s\n", what, file, line, why);
    fflush(stderr);
    abort();
}

void cu_check_launch(const char *kernel, const char *file, int line) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) cu_die(kernel, file, line, cudaGetErrorString(e));
}

int cuda_kernels_device_count(void) {
    int n = 0;
    /* no driver gives 35 and leaves n alone; both an error and 0 devices mean no GPU */
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError(); /* clear it, so later checks see their own errors */
        return 0;
    }
    return n > 0 ? n : 0;
}

int cuda_kernels_available(void) { return cuda_kernels_device_count() > 0; }

static void apply_math_mode(void) {
    BLAS_CHECK(cublasSetMathMode(g.blas, g_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                : CUBLAS_DEFAULT_MATH));
}

static void ctx_init(void) {
    if (!cuda_kernels_available()) {
        fprintf(stderr, "dtrain: cuda: no usable CUDA device (no driver, or no GPU visible)\n");
        abort();
    }
    if (g_device >= 0) CU_CHECK(cudaSetDevice(g_device));
    /* a blocking stream: it still orders with the legacy default stream, so a caller's
     * plain cudaMemcpy cannot overtake queued ops */
    CU_CHECK(cudaStreamCreate(&g.stream));
    BLAS_CHECK(cublasCreate(&g.blas));
    BLAS_CHECK(cublasSetStream(g.blas, g.stream));
    apply_math_mode();
    CU_CHECK(cudaMalloc((void **)&g.scalars, sizeof(dev_scalars)));
    CU_CHECK(cudaMemsetAsync(g.scalars, 0, sizeof(dev_scalars), g.stream));
}

static void ctx(void) { pthread_once(&g_once, ctx_init); }

cudaStream_t cu_stream(void) {
    ctx();
    return g.stream;
}

cublasHandle_t cu_blas(void) {
    ctx();
    return g.blas;
}

void cuda_kernels_set_device(int dev) { g_device = dev; }

int cuda_kernels_get_device(void) {
    ctx();
    int dev = 0;
    CU_CHECK(cudaGetDevice(&dev));
    return dev;
}

const char *cuda_kernels_device_name(void) {
    static char name[256];
    cudaDeviceProp prop;
    CU_CHECK(cudaGetDeviceProperties(&prop, cuda_kernels_get_device()));
    snprintf(name, sizeof name, "%s", prop.name);
    return name;
}

void cuda_kernels_set_tf32(int on) {
    g_tf32 = on != 0;
    ctx();
    apply_math_mode();
}

int cuda_kernels_get_tf32(void) { return g_tf32; }

void *cuda_kernels_stream(void) { return (void *)cu_stream(); }

/* The GPU owns its own parallelism; the host thread count is a CPU-backend notion. */
void kernels_set_threads(int n) { (void)n; }
int kernels_get_threads(void) { return 1; }

/* ---- memory ------------------------------------------------------------------------- */

void *cuda_kernels_alloc_bytes(size_t bytes) {
    ctx();
    void *p = NULL;
    size_t b = bytes ? bytes : 4; /* a real allocation even for 0, as the CPU backend */
    cudaError_t e = cudaMalloc(&p, b);
    if (e != cudaSuccess) {
        fprintf(stderr, "dtrain: cuda: out of device memory allocating %zu bytes: %s\n", bytes,
                cudaGetErrorString(e));
        abort();
    }
    CU_CHECK(cudaMemsetAsync(p, 0, b, g.stream));
    return p;
}

void cuda_kernels_free_bytes(void *p) {
    if (p) CU_CHECK(cudaFree(p));
}

float *kernels_alloc(size_t nfloats) {
    if (nfloats > SIZE_MAX / sizeof(float)) {
        fprintf(stderr, "dtrain: cuda: kernels_alloc: %zu floats overflow size_t\n", nfloats);
        abort();
    }
    return (float *)cuda_kernels_alloc_bytes(nfloats * sizeof(float));
}

void kernels_free(float *p) { cuda_kernels_free_bytes(p); }

float *cu_ws(size_t floats) {
    ctx();
    if (floats <= g.ws_floats) return g.ws;
    /* grow geometrically: ops ask in turn, and each regrowth synchronises (cudaFree) */
    size_t want = floats + floats / 2;
    if (g.ws) CU_CHECK(cudaFree(g.ws));
    g.ws = NULL;
    g.ws_floats = 0;
    CU_CHECK(cudaMalloc((void **)&g.ws, want * sizeof(float)));
    g.ws_floats = want;
    return g.ws;
}

int *cu_err_flag(void) {
    ctx();
    return &g.scalars->err;
}

void cuda_kernels_to_device(void *dst, const void *src, size_t bytes) {
    ctx();
    if (!bytes) return;
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g.stream));
    CU_CHECK(cudaStreamSynchronize(g.stream)); /* src may be reused as soon as we return */
}

void cuda_kernels_to_host(void *dst, const void *src, size_t bytes) {
    ctx();
    if (!bytes) return;
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g.stream));
    CU_CHECK(cudaStreamSynchronize(g.stream));
}

void cuda_kernels_copy(void *dst, const void *src, size_t bytes) {
    ctx();
    if (bytes) CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g.stream));
}

void cuda_kernels_zero(void *dst, size_t bytes) {
    ctx();
    if (bytes) CU_CHECK(cudaMemsetAsync(dst, 0, bytes, g.stream));
}

static __global__ void fill_k(float *dst, float value, size_t n) {
    GRID_STRIDE(i, n) dst[i] = value;
}

void cuda_kernels_fill(float *dst, float value, size_t n) {
    if (n) LAUNCH(fill_k, kc_blocks(n), KC_BLOCK, dst, value, n);
}

/* ---- device errors and scalars ------------------------------------------------------ */

static void report_errors(int err) {
    if (err & CU_ERR_TOKEN)
        fprintf(stderr, "dtrain: cuda: embedding: a token id was negative\n");
    if (err & CU_ERR_TARGET)
        fprintf(stderr, "dtrain: cuda: softmax_xent: a target was outside [0, V)\n");
    if (err) {
        fflush(stderr);
        abort();
    }
}

void cuda_kernels_synchronize(void) {
    ctx();
    CU_CHECK(cudaStreamSynchronize(g.stream));
    int err = 0;
    CU_CHECK(cudaMemcpy(&err, &g.scalars->err, sizeof err, cudaMemcpyDeviceToHost));
    report_errors(err);
}

/* one block sums the partials in a fixed order */
static __global__ void sum_parts_k(dev_scalars *out, const double *part, int n) {
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
    s = block_sum(s);
    if (threadIdx.x == 0) out->val = s;
}

const double *cu_sum_on_device(const double *part, int n) {
    ctx();
    LAUNCH(sum_parts_k, 1, KC_BLOCK, g.scalars, part, n);
    return &g.scalars->val;
}

double cu_fetch_sum(void) {
    ctx();
    dev_scalars h;
    CU_CHECK(cudaMemcpyAsync(&h, g.scalars, sizeof h, cudaMemcpyDeviceToHost, g.stream));
    CU_CHECK(cudaStreamSynchronize(g.stream));
    report_errors(h.err);
    return h.val;
}

double cu_sum_to_host(const double *part, int n) {
    cu_sum_on_device(part, n);
    return cu_fetch_sum();
}

/* ---- column sums (second pass; the first is a template in common.cuh) ---------------- */

__global__ void colsum_finish_k(float *dst, const float *part, int chunks, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float s = 0.0f;
    for (int k = 0; k < chunks; k++) s += part[(size_t)k * cols + c];
    dst[c] += s;
}

/* ---- GEMM --------------------------------------------------------------------------- */

/* C[M,N] *= beta over a strided matrix: what a product with K = 0 leaves */
static __global__ void scale_mat_k(float *C, int M, int N, int ldc, float beta) {
    GRID_STRIDE(i, (size_t)M * N) {
        float *c = C + (i / N) * ldc + i % N;
        *c = beta == 0.0f ? 0.0f : beta * *c;
    }
}

static cublasOperation_t op(int t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

/* cuBLAS is column-major; a row-major C = A B is the column-major C^T = B^T A^T, and a
 * row-major matrix read column-major is its transpose. So the operands swap places and
 * keep their own transpose flags. */
void rm_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        LAUNCH(scale_mat_k, kc_blocks((size_t)M * N), KC_BLOCK, C, M, N, ldc, beta);
        return;
    }
    BLAS_CHECK(cublasSgemm(cu_blas(), op(tb), op(ta), N, M, K, &alpha, B, ldb, A, lda, &beta,
                           C, ldc));
}

void rm_gemm_strided(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     long long sA, const float *B, int ldb, long long sB, float beta, float *C,
                     int ldc, long long sC, int batch) {
    if (M <= 0 || N <= 0 || K <= 0 || batch <= 0) return; /* callers never pass K = 0 */
    BLAS_CHECK(cublasSgemmStridedBatched(cu_blas(), op(tb), op(ta), N, M, K, &alpha, B, ldb, sB,
                                         A, lda, sA, &beta, C, ldc, sC, batch));
}
