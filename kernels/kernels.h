/* kernels.h: every compute op of dtrain, declared once.
 *
 * The CPU backend (kernels/cpu) implements these in C with OpenMP loops; its GEMMs are
 * dtrain's own SGEMM (cpu/sgemm_avx512.c) where the CPU has AVX-512, OpenBLAS's otherwise
 * or when DTRAIN_SGEMM=openblas. The CUDA backend (kernels/cuda, cuBLAS for the GEMMs)
 * implements the same names and signatures, one .cu file per op family, named as its
 * kernels/cpu file.
 *
 * Conventions, for every op:
 *  - Tensors are dense, row-major float32; shapes are in the comments, images are NCHW.
 *  - Forward ops overwrite their output.
 *  - Backward ops ACCUMULATE (+=) into every gradient they produce (inputs and
 *    parameters alike); the caller zeroes gradient buffers once per step. This is what
 *    lets a tensor that feeds two consumers (residuals, tied weights) receive both
 *    gradients without extra copies.
 *  - A gradient pointer may be NULL when the caller does not need it (e.g. dinp of the
 *    first layer); the op then skips that work.
 */
#ifndef DTRAIN_KERNELS_H
#define DTRAIN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- backend ---------------------------------------------------------------------- */

/* Threads the backend may use inside one op (its GEMMs and parallel loops).
 * The backend owns the cores only while one of its ops runs. */
void kernels_set_threads(int n);
int kernels_get_threads(void);

/* Memory for parameters, gradients and activations. 64-byte aligned, zeroed.
 * Aborts with a message naming the size on failure (callers never see NULL). */
float *kernels_alloc(size_t nfloats);
void kernels_free(float *p);

/* ---- memory: the only ways in and out ------------------------------------------------ */

/* With the CUDA backend, every pointer an op takes is device memory, which host code must
 * never read or write (on a GPU it faults; the emulator makes it fault too): these calls are
 * how data crosses. With the CPU backend they are memcpy and memset.
 * kernels_to_device and kernels_to_host wait until the copy is done (the source may be
 * reused, the destination read, as soon as they return); kernels_copy (within the backend's
 * memory) and kernels_zero are ordered with the ops, like an op. */
void kernels_to_device(void *dst, const void *src, size_t bytes);
void kernels_to_host(void *dst, const void *src, size_t bytes);
void kernels_copy(void *dst, const void *src, size_t bytes);
void kernels_zero(void *dst, size_t bytes);
/* Waits for every op enqueued so far and reports any error found on the device. */
void kernels_synchronize(void);

/* ---- moving averages ----------------------------------------------------------------- */

/* ema[n] = decay * ema[n] + (1 - decay) * x[n]   (an EMA of the weights) */
void ema_update(float *ema, const float *x, size_t n, float decay);

/* ---- optimizer and gradient clipping over flat arenas ----------------------------------- */

/* Types are declared once, whatever the number of times this file is included (the
 * backends' headers include it again under their name prefixes: kernels/cuda/names.h). */
#ifndef DTRAIN_KERNELS_TYPES
#define DTRAIN_KERNELS_TYPES
/* One named tensor of the flat parameter/gradient arenas: floats [offset, offset + numel),
 * weight decay applied to it or not. Floats between tensors (alignment padding) are never
 * touched. */
typedef struct optim_span {
    size_t offset, numel;
    int decay;
} optim_span;
/* The tensor table the optimizer ops run over, kept in the backend's memory. */
typedef struct optim_table optim_table;
#endif

/* The table of nspans tensors (copied: spans may be freed on return); free with
 * optim_table_free. Allocates, so it comes after the device is chosen. */
optim_table *optim_table_create(const optim_span *spans, int nspans);
void optim_table_free(optim_table *t);

/* Adam over every tensor of the table, elementwise:
 *   g' = g + wd_l2 p;  m = b1 m + (1-b1) g';  v = b2 v + (1-b2) g'^2
 *   p -= lr wd_decoupled p;  p -= (lr/bc1) m / (sqrt(v)/sqrt(bc2) + eps)
 * bc1 = 1 - b1^t and bc2 = 1 - b2^t come from the caller. decoupled != 0 is AdamW
 * (wd_decoupled = wd, wd_l2 = 0), else Adam with an L2 penalty (wd_l2 = wd); wd applies only
 * to the tensors with decay set. */
void adam_step(const optim_table *t, float *params, const float *grads, float *m, float *v,
               float lr, float beta1, float beta2, float eps, float wd, int decoupled, float bc1,
               float bc2);
/* SGD with momentum mu (0: plain): g' = g + wd p; buf = mu buf + g'; p -= lr (mu > 0 ? buf : g') */
void sgd_step(const optim_table *t, float *params, const float *grads, float *buf, float lr,
              float momentum, float wd);
/* Global L2 norm of x[n] (the gradient arena), summed in double in a fixed order. If
 * max_norm > 0 and the norm exceeds it, x is scaled by max_norm / (norm + 1e-6). Returns the
 * norm before clipping (the host gets it: this waits for the backend). */
double grad_clip_norm(float *x, size_t n, double max_norm);

/* ---- linear ----------------------------------------------------------------------- */

/* out[N,OC] = inp[N,C] . w[OC,C]^T + b[OC]      (b may be NULL) */
void linear_forward(float *out, const float *inp, const float *w, const float *b,
                    int N, int C, int OC);
/* dinp[N,C] += dout[N,OC] . w[OC,C];  dw[OC,C] += dout^T . inp;  db[OC] += sum_n dout */
void linear_backward(float *dinp, float *dw, float *db, const float *dout,
                     const float *inp, const float *w, int N, int C, int OC);

/* ---- activations ------------------------------------------------------------------ */

/* out[n] = max(inp[n], 0); out may alias inp */
void relu_forward(float *out, const float *inp, size_t n);
/* dinp[n] += dout[n] * (out[n] > 0); uses the forward OUTPUT */
void relu_backward(float *dinp, const float *dout, const float *out, size_t n);

/* ---- convolution ------------------------------------------------------------------ */

/* Square kernel K, stride 1, zero padding `pad`:
 * OH = H + 2*pad - K + 1, OW = W + 2*pad - K + 1.
 * out[B,OC,OH,OW] = conv(inp[B,C,H,W], w[OC,C,K,K]) + b[OC]   (b may be NULL)
 * scratch: at least conv2d_scratch_floats(...) floats, owned by the caller. */
size_t conv2d_scratch_floats(int B, int C, int H, int W, int OC, int K, int pad);
void conv2d_forward(float *out, const float *inp, const float *w, const float *b,
                    float *scratch, int B, int C, int H, int W, int OC, int K, int pad);
/* dinp[B,C,H,W] += ..., dw[OC,C,K,K] += ..., db[OC] += ... ; any of them may be NULL */
void conv2d_backward(float *dinp, float *dw, float *db, const float *dout,
                     const float *inp, const float *w, float *scratch,
                     int B, int C, int H, int W, int OC, int K, int pad);

/* ---- pooling ---------------------------------------------------------------------- */

/* 2x2 max pooling, stride 2, H and W even: out[BC,H/2,W/2] from inp[BC,H,W]
 * (BC = batch * channels). Ties go to the first element in row-major window order. */
void maxpool2x2_forward(float *out, const float *inp, int BC, int H, int W);
/* dinp[BC,H,W] += dout routed to each window's argmax (recomputed from inp) */
void maxpool2x2_backward(float *dinp, const float *dout, const float *inp,
                         int BC, int H, int W);

/* 2x2 average pooling, stride 2, H and W even: out[BC, H/2, W/2];
 * backward: dinp[BC,H,W] += a quarter of its window's dout */
void avgpool2x2_forward(float *out, const float *inp, int BC, int H, int W);
void avgpool2x2_backward(float *dinp, const float *dout, int BC, int H, int W);

/* ---- loss ------------------------------------------------------------------------- */

/* probs[N,V] = softmax(logits[N,V]) per row; losses[N] = -log probs[n, targets[n]].
 * Returns the mean loss over the N rows (accumulated in double). */
float softmax_xent_forward(float *probs, float *losses, const float *logits,
                           const int32_t *targets, int N, int V);
/* dlogits[N,V] += scale * (probs - onehot(targets)); scale is usually 1/N for a mean loss */
void softmax_xent_backward(float *dlogits, const float *probs, const int32_t *targets,
                           int N, int V, float scale);

/* ---- transformer (GPT) -------------------------------------------------------------- */

/* out[B,T,C] = wte[tokens[b,t], :] + wpe[t, :]   (tokens in [0, V)) */
void embedding_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                       int B, int T, int C);
/* dwte[V,C] += scatter of dout by token; dwpe[T,C] += sum over the batch (either may be NULL) */
void embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                        int B, int T, int C);

/* Per row of inp[N,C]: out = (x - mean) * rstd * weight + bias   (bias may be NULL).
 * mean[N] and rstd[N] are saved for the backward pass; eps = 1e-5. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C);

/* Causal multi-head self-attention over qkv[B,T,3C] (q, k, v concatenated along the last
 * axis, each split into NH heads of HS = C/NH): out[B,T,C] = softmax(q k^T / sqrt(HS),
 * masked to keys <= query) v. att[B,NH,T,T] holds the softmax for the backward pass
 * (entries above the diagonal are zero). */
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
/* dqkv[B,T,3C] += ...; scratch: attention_scratch_floats(B,T,C,NH) floats */
size_t attention_scratch_floats(int B, int T, int C, int NH);
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                        float *scratch, int B, int T, int C, int NH);

/* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void gelu_forward(float *out, const float *inp, size_t n);
/* dinp += dout * gelu'(inp) */
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* out[n] = a[n] + b[n] */
void residual_forward(float *out, const float *a, const float *b, size_t n);
/* da += dout; db += dout */
void residual_backward(float *da, float *db, const float *dout, size_t n);

/* ---- image generation (diffusion U-Net), NCHW ---------------------------------------- */

/* Group normalisation: channels split into G groups of C/G; statistics per (example, group)
 * over (C/G) x HW values; eps = 1e-5. mean[B*G], rstd[B*G] are saved for backward. */
void groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int B, int C, int HW, int G);
void groupnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int B, int C, int HW, int G);

/* SiLU: out = x * sigmoid(x); backward uses the input */
void silu_forward(float *out, const float *inp, size_t n);
void silu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* Nearest-neighbour 2x upsampling: out[BC, 2H, 2W] from inp[BC, H, W];
 * backward: dinp[BC,H,W] += the sum of its four copies' gradients */
void upsample2x_forward(float *out, const float *inp, int BC, int H, int W);
void upsample2x_backward(float *dinp, const float *dout, int BC, int H, int W);

/* Channel concatenation: out[B, C1+C2, HW] = [a[B,C1,HW], b[B,C2,HW]];
 * backward: da += dout[:, :C1], db += dout[:, C1:] (either may be NULL) */
void concat_channels_forward(float *out, const float *a, const float *b, int B, int C1, int C2,
                             int HW);
void concat_channels_backward(float *da, float *db, const float *dout, int B, int C1, int C2,
                              int HW);

/* out[B,C,HW] = inp[B,C,HW] + v[B,C] broadcast over HW (a per-example, per-channel shift,
 * e.g. a time/label embedding); out may alias inp.
 * backward: dinp += dout (if not NULL), dv[B,C] += sum over HW of dout */
void add_channel_forward(float *out, const float *inp, const float *v, int B, int C, int HW);
void add_channel_backward(float *dinp, float *dv, const float *dout, int B, int C, int HW);

/* Layout changes between feature maps and token sequences (for attention over pixels):
 * out[B, HW, C] = transpose of inp[B, C, HW], and back. Backward of one is the other
 * (accumulating): transpose_chw_backward(dinp[B,C,HW] += ..., dout[B,HW,C]). */
void transpose_chw_forward(float *out, const float *inp, int B, int C, int HW);
void transpose_chw_backward(float *dinp, const float *dout, int B, int C, int HW);

/* Non-causal (full) multi-head self-attention: same layout and contract as
 * attention_forward/backward, every query attends to every key. */
void attention_full_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
void attention_full_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                             float *scratch, int B, int T, int C, int NH);

/* Mean squared error: returns mean over n of (pred - target)^2 (accumulated in double);
 * backward: dpred += scale * 2 (pred - target) / n */
float mse_forward(const float *pred, const float *target, size_t n);
void mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);

#endif
