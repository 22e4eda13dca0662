/* linear.cu: the fully connected layer, as kernels/cpu/linear.c: cuBLAS for the products
 * (on the backend's one stream, so deterministic), an ordered column sum for the bias
 * gradient. */
#include "common.cuh"

/* out[n, o] = b[o]: the bias goes in first and the GEMM adds onto it (beta = 1) */
static __global__ void fill_rows_k(float *out, const float *b, size_t n, int cols) {
    GRID_STRIDE(i, n) out[i] = b[i % cols];
}

void linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                    int OC) {
    if (N <= 0 || OC <= 0) return;
    size_t n = (size_t)N * OC;
    if (b) LAUNCH(fill_rows_k, kc_blocks(n), KC_BLOCK, out, b, n, OC);
    /* out[N,OC] (+)= inp[N,C] . w[OC,C]^T */
    rm_gemm(0, 1, N, OC, C, 1.0f, inp, C, w, C, b ? 1.0f : 0.0f, out, OC);
}

void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    /* dinp[N,C] += dout[N,OC] . w[OC,C] */
    if (dinp) rm_gemm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
    /* dw[OC,C] += dout^T . inp */
    if (dw) rm_gemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (db) colsum_add(db, cu_ws(colsum_part_floats(N, OC)), N, OC, mat_f{dout, OC});
}
