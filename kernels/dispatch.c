/* dispatch.c: the kernels.h names, each sending its call to the backend this process runs
 * on (device.h). The backends define prefixed names (kernels/cpu/names.h: cpu_, and
 * kernels/cuda/names.h: cuda_), so both live in one binary.
 *
 * Compiled once per flavour of binary, so core, jobs and datasets are compiled once and the
 * flavour is chosen at the final link (CMakeLists.txt):
 *   - CPU only (no KERNELS_DISPATCH_CUDA): every name is a direct call of its cpu_ op, no
 *     branch and no state; CPU runs are what they were before the CUDA backend existed.
 *   - with CUDA (KERNELS_DISPATCH_CUDA; real, or the emulator with KERNELS_CUDA_EMULATED):
 *     one predictable branch on a flag set once at start-up, before the first allocation. */
#include <stdio.h>

#include "device.h"
#include "kernels.h"

/* the cpu_ declarations: kernels.h again under cpu/names.h's mapping */
#undef DTRAIN_KERNELS_H
#include "cpu/names.h"
#include "kernels.h"
#define KC_NAMES_UNDEF
#include "cpu/names.h"
#undef KC_NAMES_UNDEF

#ifdef KERNELS_DISPATCH_CUDA
#include "cuda/kernels_cuda.h" /* the cuda_ declarations */

static int g_on_cuda;
#define DISPATCH(op) (g_on_cuda ? cuda_##op : cpu_##op)
#else
#define DISPATCH(op) cpu_##op
#endif

/* set by the first allocation: the device can no longer change */
static int g_allocated;

/* ---- device.h -------------------------------------------------------------------------- */

#ifdef KERNELS_DISPATCH_CUDA
int kernels_cuda_built(void) { return 1; }
#ifdef KERNELS_CUDA_EMULATED
int kernels_cuda_emulated(void) { return 1; }
#else
int kernels_cuda_emulated(void) { return 0; }
#endif
int kernels_cuda_devices(void) { return cuda_kernels_device_count(); }

int kernels_use_cuda(int gpu, int tf32, char *why, size_t len) {
    int visible = cuda_kernels_device_count();
    if (g_allocated)
        snprintf(why, len, "the device must be chosen before the first allocation");
    else if (visible <= 0)
        snprintf(why, len,
                 "no GPU is visible to this process (no driver, no GPU, or "
                 "CUDA_VISIBLE_DEVICES empty)");
    else if (gpu < 0 || gpu >= visible)
        snprintf(why, len, "GPU %d was asked for, but %d GPU%s visible", gpu, visible,
                 visible == 1 ? " is" : "s are");
    else {
        /* binding first: the context (stream, cuBLAS) is created on the bound device */
        cuda_kernels_set_device(gpu);
        cuda_kernels_set_tf32(tf32);
        g_on_cuda = 1;
        return 0;
    }
    return -1;
}

int kernels_on_cuda(void) { return g_on_cuda; }
int kernels_device_index(void) { return g_on_cuda ? cuda_kernels_get_device() : -1; }
const char *kernels_device_name(void) { return g_on_cuda ? cuda_kernels_device_name() : "cpu"; }
void *kernels_stream(void) { return g_on_cuda ? cuda_kernels_stream() : NULL; }
#else
int kernels_cuda_built(void) { return 0; }
int kernels_cuda_emulated(void) { return 0; }
int kernels_cuda_devices(void) { return 0; }

int kernels_use_cuda(int gpu, int tf32, char *why, size_t len) {
    (void)gpu, (void)tf32;
    snprintf(why, len,
             "this dtrain was built without CUDA (configure with nvcc on PATH, or run "
             "build/dtrain-emu for the emulated GPU)");
    return -1;
}

int kernels_on_cuda(void) { return 0; }
int kernels_device_index(void) { return -1; }
const char *kernels_device_name(void) { return "cpu"; }
void *kernels_stream(void) { return NULL; }
#endif

/* ---- kernels.h --------------------------------------------------------------------------- */

/* The CPU backend's threads also serve the host-side work on CUDA (data loading). */
void kernels_set_threads(int n) {
    cpu_kernels_set_threads(n);
#ifdef KERNELS_DISPATCH_CUDA
    if (g_on_cuda) cuda_kernels_set_threads(n);
#endif
}
int kernels_get_threads(void) { return cpu_kernels_get_threads(); }
float *kernels_alloc(size_t nfloats) {
    g_allocated = 1;
    return DISPATCH(kernels_alloc)(nfloats);
}
void kernels_free(float *p) { DISPATCH(kernels_free)(p); }
void kernels_to_device(void *dst, const void *src, size_t bytes) {
    DISPATCH(kernels_to_device)(dst, src, bytes);
}
void kernels_to_host(void *dst, const void *src, size_t bytes) {
    DISPATCH(kernels_to_host)(dst, src, bytes);
}
void kernels_copy(void *dst, const void *src, size_t bytes) {
    DISPATCH(kernels_copy)(dst, src, bytes);
}
void kernels_zero(void *dst, size_t bytes) { DISPATCH(kernels_zero)(dst, bytes); }
void kernels_synchronize(void) { DISPATCH(kernels_synchronize)(); }
void ema_update(float *ema, const float *x, size_t n, float decay) {
    DISPATCH(ema_update)(ema, x, n, decay);
}
optim_table *optim_table_create(const optim_span *spans, int nspans) {
    g_allocated = 1;
    return DISPATCH(optim_table_create)(spans, nspans);
}
void optim_table_free(optim_table *t) { DISPATCH(optim_table_free)(t); }
void adam_step(const optim_table *t, float *params, const float *grads, float *m, float *v,
               float lr, float beta1, float beta2, float eps, float wd, int decoupled, float bc1,
               float bc2) {
    DISPATCH(adam_step)(t, params, grads, m, v, lr, beta1, beta2, eps, wd, decoupled, bc1, bc2);
}
void sgd_step(const optim_table *t, float *params, const float *grads, float *buf, float lr,
              float momentum, float wd) {
    DISPATCH(sgd_step)(t, params, grads, buf, lr, momentum, wd);
}
double grad_clip_norm(float *x, size_t n, double max_norm) {
    return DISPATCH(grad_clip_norm)(x, n, max_norm);
}
void linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                    int OC) {
    DISPATCH(linear_forward)(out, inp, w, b, N, C, OC);
}
void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC) {
    DISPATCH(linear_backward)(dinp, dw, db, dout, inp, w, N, C, OC);
}
void relu_forward(float *out, const float *inp, size_t n) { DISPATCH(relu_forward)(out, inp, n); }
void relu_backward(float *dinp, const float *dout, const float *out, size_t n) {
    DISPATCH(relu_backward)(dinp, dout, out, n);
}
size_t conv2d_scratch_floats(int B, int C, int H, int W, int OC, int K, int pad) {
    return DISPATCH(conv2d_scratch_floats)(B, C, H, W, OC, K, pad);
}
void conv2d_forward(float *out, const float *inp, const float *w, const float *b, float *scratch,
                    int B, int C, int H, int W, int OC, int K, int pad) {
    DISPATCH(conv2d_forward)(out, inp, w, b, scratch, B, C, H, W, OC, K, pad);
}
void conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, float *scratch, int B, int C, int H, int W, int OC, int K,
                     int pad) {
    DISPATCH(conv2d_backward)(dinp, dw, db, dout, inp, w, scratch, B, C, H, W, OC, K, pad);
}
void maxpool2x2_forward(float *out, const float *inp, int BC, int H, int W) {
    DISPATCH(maxpool2x2_forward)(out, inp, BC, H, W);
}
void maxpool2x2_backward(float *dinp, const float *dout, const float *inp, int BC, int H, int W) {
    DISPATCH(maxpool2x2_backward)(dinp, dout, inp, BC, H, W);
}
void avgpool2x2_forward(float *out, const float *inp, int BC, int H, int W) {
    DISPATCH(avgpool2x2_forward)(out, inp, BC, H, W);
}
void avgpool2x2_backward(float *dinp, const float *dout, int BC, int H, int W) {
    DISPATCH(avgpool2x2_backward)(dinp, dout, BC, H, W);
}
float softmax_xent_forward(float *probs, float *losses, const float *logits, const int32_t *targets,
                           int N, int V) {
    return DISPATCH(softmax_xent_forward)(probs, losses, logits, targets, N, V);
}
void softmax_xent_backward(float *dlogits, const float *probs, const int32_t *targets, int N, int V,
                           float scale) {
    DISPATCH(softmax_xent_backward)(dlogits, probs, targets, N, V, scale);
}
void embedding_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int B,
                       int T, int C) {
    DISPATCH(embedding_forward)(out, tokens, wte, wpe, B, T, C);
}
void embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B,
                        int T, int C) {
    DISPATCH(embedding_backward)(dwte, dwpe, dout, tokens, B, T, C);
}
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C) {
    DISPATCH(layernorm_forward)(out, mean, rstd, inp, weight, bias, N, C);
}
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        int N, int C) {
    DISPATCH(layernorm_backward)(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    DISPATCH(attention_forward)(out, att, qkv, B, T, C, NH);
}
size_t attention_scratch_floats(int B, int T, int C, int NH) {
    return DISPATCH(attention_scratch_floats)(B, T, C, NH);
}
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                        float *scratch, int B, int T, int C, int NH) {
    DISPATCH(attention_backward)(dqkv, dout, qkv, att, scratch, B, T, C, NH);
}
void gelu_forward(float *out, const float *inp, size_t n) { DISPATCH(gelu_forward)(out, inp, n); }
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    DISPATCH(gelu_backward)(dinp, dout, inp, n);
}
void residual_forward(float *out, const float *a, const float *b, size_t n) {
    DISPATCH(residual_forward)(out, a, b, n);
}
void residual_backward(float *da, float *db, const float *dout, size_t n) {
    DISPATCH(residual_backward)(da, db, dout, n);
}
void groupnorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int B, int C, int HW, int G) {
    DISPATCH(groupnorm_forward)(out, mean, rstd, inp, weight, bias, B, C, HW, G);
}
void groupnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        int B, int C, int HW, int G) {
    DISPATCH(groupnorm_backward)(dinp, dweight, dbias, dout, inp, weight, mean, rstd, B, C, HW, G);
}
void silu_forward(float *out, const float *inp, size_t n) { DISPATCH(silu_forward)(out, inp, n); }
void silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    DISPATCH(silu_backward)(dinp, dout, inp, n);
}
void upsample2x_forward(float *out, const float *inp, int BC, int H, int W) {
    DISPATCH(upsample2x_forward)(out, inp, BC, H, W);
}
void upsample2x_backward(float *dinp, const float *dout, int BC, int H, int W) {
    DISPATCH(upsample2x_backward)(dinp, dout, BC, H, W);
}
void concat_channels_forward(float *out, const float *a, const float *b, int B, int C1, int C2,
                             int HW) {
    DISPATCH(concat_channels_forward)(out, a, b, B, C1, C2, HW);
}
void concat_channels_backward(float *da, float *db, const float *dout, int B, int C1, int C2,
                              int HW) {
    DISPATCH(concat_channels_backward)(da, db, dout, B, C1, C2, HW);
}
void add_channel_forward(float *out, const float *inp, const float *v, int B, int C, int HW) {
    DISPATCH(add_channel_forward)(out, inp, v, B, C, HW);
}
void add_channel_backward(float *dinp, float *dv, const float *dout, int B, int C, int HW) {
    DISPATCH(add_channel_backward)(dinp, dv, dout, B, C, HW);
}
void transpose_chw_forward(float *out, const float *inp, int B, int C, int HW) {
    DISPATCH(transpose_chw_forward)(out, inp, B, C, HW);
}
void transpose_chw_backward(float *dinp, const float *dout, int B, int C, int HW) {
    DISPATCH(transpose_chw_backward)(dinp, dout, B, C, HW);
}
void attention_full_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    DISPATCH(attention_full_forward)(out, att, qkv, B, T, C, NH);
}
void attention_full_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                             float *scratch, int B, int T, int C, int NH) {
    DISPATCH(attention_full_backward)(dqkv, dout, qkv, att, scratch, B, T, C, NH);
}
float mse_forward(const float *pred, const float *target, size_t n) {
    return DISPATCH(mse_forward)(pred, target, n);
}
void mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    DISPATCH(mse_backward)(dpred, pred, target, n, scale);
}
