/* elementwise.cu: the memory-bound ops: activations, residual, MSE, pooling and
 * resampling, channel moves, embeddings. One thread per output element (grid-stride);
 * every output has one writer, and the few sums run in a fixed order, so results are
 * deterministic. Formulas follow kernels/cpu, including where they flush to limits. */
#include "common.cuh"

/* ---- relu --------------------------------------------------------------------------- */

static __global__ void relu_fwd_k(float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_forward(float *out, const float *inp, size_t n) {
    if (n) LAUNCH(relu_fwd_k, kc_blocks(n), KC_BLOCK, out, inp, n);
}

/* a select, not a product: NaN/inf in the gradient of a dead unit stays out */
static __global__ void relu_bwd_k(float *dinp, const float *dout, const float *out, size_t n) {
    GRID_STRIDE(i, n) dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

void relu_backward(float *dinp, const float *dout, const float *out, size_t n) {
    if (dinp && n) LAUNCH(relu_bwd_k, kc_blocks(n), KC_BLOCK, dinp, dout, out, n);
}

/* ---- gelu (tanh approximation; see kernels/cpu/gelu.c for the algebra) --------------- */

#define GELU_K0 0.7978845608f
#define GELU_K1 0.044715f
#define GELU_FLUSH -43.0f

static __global__ void gelu_fwd_k(float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i];
        float u = GELU_K0 * (x + GELU_K1 * x * x * x);
        float y = x / (1.0f + expf(-2.0f * u));
        out[i] = u < GELU_FLUSH ? 0.0f : y;
    }
}

void gelu_forward(float *out, const float *inp, size_t n) {
    if (n) LAUNCH(gelu_fwd_k, kc_blocks(n), KC_BLOCK, out, inp, n);
}

static __global__ void gelu_bwd_k(float *dinp, const float *dout, const float *inp, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i], x2 = x * x;
        float u = GELU_K0 * (x + GELU_K1 * x2 * x);
        float du = GELU_K0 * (1.0f + 3.0f * GELU_K1 * x2);
        float e = expf(-2.0f * u);
        float s = 1.0f / (1.0f + e);
        float grad = s + 2.0f * x * s * (e * s) * du;
        dinp[i] += dout[i] * (u < GELU_FLUSH ? 0.0f : grad);
    }
}

void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (dinp && n) LAUNCH(gelu_bwd_k, kc_blocks(n), KC_BLOCK, dinp, dout, inp, n);
}

/* ---- silu (see kernels/cpu/silu.c) -------------------------------------------------- */

#define SILU_FLUSH 80.0f

static __global__ void silu_fwd_k(float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i];
        float y = x / (1.0f + expf(-x));
        out[i] = x < -SILU_FLUSH ? 0.0f : (x > SILU_FLUSH ? x : y);
    }
}

void silu_forward(float *out, const float *inp, size_t n) {
    if (n) LAUNCH(silu_fwd_k, kc_blocks(n), KC_BLOCK, out, inp, n);
}

static __global__ void silu_bwd_k(float *dinp, const float *dout, const float *inp, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i];
        float e = expf(-x);
        float s = 1.0f / (1.0f + e);
        float grad = s * fmaf(x, e * s, 1.0f);
        grad = x < -SILU_FLUSH ? 0.0f : (x > SILU_FLUSH ? 1.0f : grad);
        dinp[i] += dout[i] * grad;
    }
}

void silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (dinp && n) LAUNCH(silu_bwd_k, kc_blocks(n), KC_BLOCK, dinp, dout, inp, n);
}

/* ---- residual ----------------------------------------------------------------------- */

static __global__ void add_k(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

void residual_forward(float *out, const float *a, const float *b, size_t n) {
    if (n) LAUNCH(add_k, kc_blocks(n), KC_BLOCK, out, a, b, n);
}

/* da == db (x + x) must receive dout twice: both adds happen in the same thread, in turn */
static __global__ void residual_bwd_k(float *da, float *db, const float *dout, size_t n) {
    GRID_STRIDE(i, n) {
        float g = dout[i];
        if (da) da[i] += g;
        if (db) db[i] += g;
    }
}

void residual_backward(float *da, float *db, const float *dout, size_t n) {
    if ((da || db) && n) LAUNCH(residual_bwd_k, kc_blocks(n), KC_BLOCK, da, db, dout, n);
}

/* ---- mse ---------------------------------------------------------------------------- */

/* Per-block partial sums of (p - t)^2 in double; the grid size depends on n only, so the
 * partials and their ordered sum (cu_sum_to_host) are the same on every run. */
static __global__ void sq_err_k(double *part, const float *p, const float *t, size_t n) {
    double s = 0.0;
    GRID_STRIDE(i, n) {
        double d = (double)p[i] - (double)t[i];
        s += d * d;
    }
    s = block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

float mse_forward(const float *pred, const float *target, size_t n) {
    if (n == 0) return 0.0f;
    unsigned nb = kc_blocks(n);
    double *part = (double *)cu_ws(2 * (size_t)nb); /* nb doubles */
    LAUNCH(sq_err_k, nb, KC_BLOCK, part, pred, target, n);
    return (float)(cu_sum_to_host(part, (int)nb) / (double)n);
}

static __global__ void mse_bwd_k(float *dpred, const float *p, const float *t, float coef,
                                 size_t n) {
    GRID_STRIDE(i, n) dpred[i] += coef * (p[i] - t[i]);
}

void mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    if (!dpred || n == 0) return;
    float coef = (float)(2.0 * (double)scale / (double)n);
    LAUNCH(mse_bwd_k, kc_blocks(n), KC_BLOCK, dpred, pred, target, coef, n);
}

/* ---- 2x2 windows: max and average pooling, upsampling --------------------------------- */

static void check_even(const char *op, int H, int W) {
    if (H % 2 || W % 2) {
        fprintf(stderr, "%s: H=%d and W=%d must both be even\n", op, H, W);
        abort();
    }
}

/* Window of small pixel i (of [BC, OH, OW], OW = W/2): its top-left index in [BC, H, W].
 * H = 2 OH, so the flat small row r = bc OH + oy maps to big row 2r. */
static __device__ __forceinline__ size_t window_at(size_t i, int OW) {
    size_t r = i / OW, x = i % OW;
    return 2 * r * (2 * (size_t)OW) + 2 * x;
}

/* The window's first maximum in row-major order, with the CPU's tie rule: the larger of
 * each horizontal pair (left on ties), then of the two winners (top on ties). */
static __device__ __forceinline__ size_t window_argmax(const float *in, size_t at, int W) {
    size_t top = in[at + 1] > in[at] ? at + 1 : at;
    size_t bot = in[at + W + 1] > in[at + W] ? at + W + 1 : at + W;
    return in[bot] > in[top] ? bot : top;
}

static __global__ void maxpool_fwd_k(float *out, const float *inp, size_t n, int W) {
    GRID_STRIDE(i, n) out[i] = inp[window_argmax(inp, window_at(i, W / 2), W)];
}

void maxpool2x2_forward(float *out, const float *inp, int BC, int H, int W) {
    check_even("maxpool2x2_forward", H, W);
    size_t n = (size_t)BC * (H / 2) * (W / 2);
    if (n) LAUNCH(maxpool_fwd_k, kc_blocks(n), KC_BLOCK, out, inp, n, W);
}

/* each window belongs to one thread, so its four inputs have one writer */
static __global__ void maxpool_bwd_k(float *dinp, const float *dout, const float *inp, size_t n,
                                     int W) {
    GRID_STRIDE(i, n) dinp[window_argmax(inp, window_at(i, W / 2), W)] += dout[i];
}

void maxpool2x2_backward(float *dinp, const float *dout, const float *inp, int BC, int H, int W) {
    check_even("maxpool2x2_backward", H, W);
    size_t n = (size_t)BC * (H / 2) * (W / 2);
    if (dinp && n) LAUNCH(maxpool_bwd_k, kc_blocks(n), KC_BLOCK, dinp, dout, inp, n, W);
}

/* small[i] (=|+=) scale * ((top pair) + (bottom pair)) of its window in big[.., 2 OW] */
static __global__ void gather_k(float *small, const float *big, size_t n, int OW, float scale,
                                int accumulate) {
    GRID_STRIDE(i, n) {
        size_t at = window_at(i, OW), W = 2 * (size_t)OW;
        float v = scale * ((big[at] + big[at + 1]) + (big[at + W] + big[at + W + 1]));
        small[i] = accumulate ? small[i] + v : v;
    }
}

/* big[j] (=|+=) scale * its window's small pixel; one thread per big pixel */
static __global__ void spread_k(float *big, const float *small, size_t n, int OW, float scale,
                                int accumulate) {
    GRID_STRIDE(j, n) {
        size_t W = 2 * (size_t)OW, r = j / W, x = j % W;
        float v = scale * small[(r / 2) * OW + x / 2];
        big[j] = accumulate ? big[j] + v : v;
    }
}

void upsample2x_forward(float *out, const float *inp, int BC, int H, int W) {
    size_t n = (size_t)BC * (2 * H) * (2 * W);
    if (n) LAUNCH(spread_k, kc_blocks(n), KC_BLOCK, out, inp, n, W, 1.0f, 0);
}

void upsample2x_backward(float *dinp, const float *dout, int BC, int H, int W) {
    size_t n = (size_t)BC * H * W;
    if (dinp && n) LAUNCH(gather_k, kc_blocks(n), KC_BLOCK, dinp, dout, n, W, 1.0f, 1);
}

void avgpool2x2_forward(float *out, const float *inp, int BC, int H, int W) {
    check_even("avgpool2x2_forward", H, W);
    size_t n = (size_t)BC * (H / 2) * (W / 2);
    if (n) LAUNCH(gather_k, kc_blocks(n), KC_BLOCK, out, inp, n, W / 2, 0.25f, 0);
}

void avgpool2x2_backward(float *dinp, const float *dout, int BC, int H, int W) {
    check_even("avgpool2x2_backward", H, W);
    size_t n = (size_t)BC * H * W;
    if (dinp && n) LAUNCH(spread_k, kc_blocks(n), KC_BLOCK, dinp, dout, n, W / 2, 0.25f, 1);
}

/* ---- channel moves ------------------------------------------------------------------ */

/* out[b, c, s] from a[b, c, s] (c < C1) or b[b, c - C1, s] */
static __global__ void concat_fwd_k(float *out, const float *a, const float *b, size_t n, int C1,
                                    int C2, int HW) {
    GRID_STRIDE(i, n) {
        size_t s = i % HW, row = i / HW;
        int Ct = C1 + C2, c = (int)(row % Ct);
        size_t ex = row / Ct;
        out[i] = c < C1 ? a[(ex * C1 + c) * HW + s] : b[(ex * C2 + (c - C1)) * HW + s];
    }
}

void concat_channels_forward(float *out, const float *a, const float *b, int B, int C1, int C2,
                             int HW) {
    size_t n = (size_t)B * (C1 + C2) * HW;
    if (n) LAUNCH(concat_fwd_k, kc_blocks(n), KC_BLOCK, out, a, b, n, C1, C2, HW);
}

/* the adjoint: one thread per element of dout, each adding into its own source element */
static __global__ void concat_bwd_k(float *da, float *db, const float *dout, size_t n, int C1,
                                    int C2, int HW) {
    GRID_STRIDE(i, n) {
        size_t s = i % HW, row = i / HW;
        int Ct = C1 + C2, c = (int)(row % Ct);
        size_t ex = row / Ct;
        if (c < C1) {
            if (da) da[(ex * C1 + c) * HW + s] += dout[i];
        } else if (db) {
            db[(ex * C2 + (c - C1)) * HW + s] += dout[i];
        }
    }
}

void concat_channels_backward(float *da, float *db, const float *dout, int B, int C1, int C2,
                              int HW) {
    size_t n = (size_t)B * (C1 + C2) * HW;
    if ((da || db) && n) LAUNCH(concat_bwd_k, kc_blocks(n), KC_BLOCK, da, db, dout, n, C1, C2, HW);
}

static __global__ void add_channel_k(float *out, const float *inp, const float *v, size_t n,
                                     int HW) {
    GRID_STRIDE(i, n) out[i] = inp[i] + v[i / HW];
}

void add_channel_forward(float *out, const float *inp, const float *v, int B, int C, int HW) {
    size_t n = (size_t)B * C * HW;
    if (n) LAUNCH(add_channel_k, kc_blocks(n), KC_BLOCK, out, inp, v, n, HW);
}

static __global__ void acc_k(float *dst, const float *src, size_t n) {
    GRID_STRIDE(i, n) dst[i] += src[i];
}

void add_channel_backward(float *dinp, float *dv, const float *dout, int B, int C, int HW) {
    size_t n = (size_t)B * C * HW;
    if (!n) return;
    if (dinp) LAUNCH(acc_k, kc_blocks(n), KC_BLOCK, dinp, dout, n);
    if (dv) rowsum(dv, 1, B * C, HW, mat_f{dout, HW}); /* dv[b, c] += sum over the row */
}

/* dst[b, s, r] (=|+=) src[b, r, s] for src [B, R, S]: 32x32 tiles through shared memory,
 * so that both the reads and the writes run along rows. 2-D blocks of 32 x 8. */
#define TT 32
static __global__ void transpose_k(float *dst, const float *src, int R, int S, int accumulate) {
    __shared__ float tile[TT][TT + 1]; /* +1: column reads hit 32 different banks */
    size_t base = (size_t)blockIdx.z * R * S;
    int r0 = blockIdx.y * TT, s0 = blockIdx.x * TT;
    for (int k = threadIdx.y; k < TT; k += 8) {
        int r = r0 + k, s = s0 + threadIdx.x;
        if (r < R && s < S) tile[k][threadIdx.x] = src[base + (size_t)r * S + s];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < TT; k += 8) {
        int s = s0 + k, r = r0 + threadIdx.x;
        if (r < R && s < S) {
            float *d = dst + base + (size_t)s * R + r;
            *d = accumulate ? *d + tile[threadIdx.x][k] : tile[threadIdx.x][k];
        }
    }
}

static void transpose(float *dst, const float *src, int B, int R, int S, int accumulate) {
    if (B <= 0 || R <= 0 || S <= 0) return;
    dim3 grid((unsigned)(S + TT - 1) / TT, (unsigned)(R + TT - 1) / TT, (unsigned)B);
    LAUNCH(transpose_k, grid, dim3(TT, 8), dst, src, R, S, accumulate);
}

void transpose_chw_forward(float *out, const float *inp, int B, int C, int HW) {
    transpose(out, inp, B, C, HW, 0);
}

void transpose_chw_backward(float *dinp, const float *dout, int B, int C, int HW) {
    if (dinp) transpose(dinp, dout, B, HW, C, 1); /* dinp[b, c, s] += dout[b, s, c] */
}

/* ---- embedding ---------------------------------------------------------------------- */

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
