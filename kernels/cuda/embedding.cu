/* embedding.cu: token plus position embeddings, as kernels/cpu/embedding.c; the
 * gradients without atomics, each element's terms added in position order as on the CPU. */
#include "common.cuh"

/* A negative id cannot be looked up: its row becomes NaN (so the loss shows it at once)
 * and the error bit makes the next synchronising call abort with a message. Ids >= V are
 * the data loader's to prevent, as on the CPU (the signature carries no V). */
static __global__ void embed_fwd_k(float *out, const int32_t *tokens, const float *wte,
                                   const float *wpe, size_t n, int T, int C, int *err) {
    GRID_STRIDE(i, n) {
        size_t row = i / C;
        int c = (int)(i % C), tok = tokens[row];
        if (tok < 0) {
            out[i] = __int_as_float(0x7fc00000); /* NaN */
            atomicOr(err, CU_ERR_TOKEN);
            continue;
        }
        out[i] = wte[(size_t)tok * C + c] + wpe[(row % T) * C + c];
    }
}

void embedding_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                       int B, int T, int C) {
    size_t n = (size_t)B * T * C;
    if (n) LAUNCH(embed_fwd_k, kc_blocks(n), KC_BLOCK, out, tokens, wte, wpe, n, T, C,
                  cu_err_flag());
}

/* dwte without atomics: block (x, y) owns columns [256 x, 256 x + 256) of the token ids
 * with id % gridDim.y == y, and walks every position in order, adding the rows whose token
 * it owns. No element has two writers, and each receives its terms in position order, as
 * on the CPU. Ids are staged through shared memory in chunks. */
#define EMB_IDS 1024
static __global__ void embed_dwte_k(float *dwte, const float *dout, const int32_t *tokens,
                                    int N, int C) {
    __shared__ int ids[EMB_IDS];
    int c = blockIdx.x * blockDim.x + threadIdx.x, owners = gridDim.y, me = blockIdx.y;
    for (int n0 = 0; n0 < N; n0 += EMB_IDS) {
        int len = N - n0 < EMB_IDS ? N - n0 : EMB_IDS;
        __syncthreads(); /* the previous chunk has been read by everyone */
        for (int k = threadIdx.x; k < len; k += blockDim.x) ids[k] = tokens[n0 + k];
        __syncthreads();
        if (c >= C) continue;
        for (int k = 0; k < len; k++) {
            int tok = ids[k];
            if (tok >= 0 && tok % owners == me)
                dwte[(size_t)tok * C + c] += dout[(size_t)(n0 + k) * C + c];
        }
    }
}

/* dwpe[t, c] += dout[b, t, c] for b in order: the CPU's order exactly */
static __global__ void embed_dwpe_k(float *dwpe, const float *dout, int B, size_t TC) {
    GRID_STRIDE(i, TC) {
        float acc = dwpe[i];
        for (int b = 0; b < B; b++) acc += dout[(size_t)b * TC + i];
        dwpe[i] = acc;
    }
}

#define EMB_OWNERS 64 /* token classes: the parallelism along the vocabulary */

void embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                        int B, int T, int C) {
    if (B <= 0 || T <= 0 || C <= 0) return;
    if (dwte) {
        dim3 grid((unsigned)(C + KC_BLOCK - 1) / KC_BLOCK, EMB_OWNERS);
        LAUNCH(embed_dwte_k, grid, KC_BLOCK, dwte, dout, tokens, B * T, C);
    }
    size_t TC = (size_t)T * C;
    if (dwpe) LAUNCH(embed_dwpe_k, kc_blocks(TC), KC_BLOCK, dwpe, dout, B, TC);
}
