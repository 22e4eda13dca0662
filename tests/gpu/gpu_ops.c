/* gpu_ops.c: every op of kernels.h on the CUDA backend against the CPU backend, forward
 * and backward, on fresh random inputs (see gpu_check.h for the protocol and the error
 * measure). Shapes are small and deliberately ragged (not multiples of 32, odd sizes) so
 * that the edges of every tiling are crossed.
 *
 * Usage: gpu_ops CASE (one of the names in `cases` below; ctest runs each as its own test)
 * or gpu_ops all. Exits 0 when every check passed, 1 otherwise, 77 without a GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/kernels_cuda.h"
#include "gpu_check.h"

#define TOL GK_TOL_FP32

/* ---- linear ----------------------------------------------------------------------- */

static int linear_case(double tol, int with_bias) {
    int N = 37, C = 61, OC = 29, bad = 0;
    gk_buf inp = gk_rand((size_t)N * C, 1, -1, 1), w = gk_rand((size_t)OC * C, 2, -1, 1);
    gk_buf b = with_bias ? gk_rand(OC, 3, -1, 1) : gk_none(), out = gk_nan((size_t)N * OC);
    linear_forward(out.h, inp.h, w.h, b.h, N, C, OC);
    cuda_linear_forward(out.d, inp.d, w.d, b.d, N, C, OC);
    bad += gk_check("linear_forward out", &out, tol);
    gk_buf dout = gk_rand((size_t)N * OC, 4, -1, 1), dinp = gk_rand((size_t)N * C, 5, -1, 1);
    gk_buf dw = gk_rand((size_t)OC * C, 6, -1, 1), db = gk_rand(OC, 7, -1, 1);
    linear_backward(dinp.h, dw.h, db.h, dout.h, inp.h, w.h, N, C, OC);
    cuda_linear_backward(dinp.d, dw.d, db.d, dout.d, inp.d, w.d, N, C, OC);
    bad += gk_check("linear_backward dinp", &dinp, tol);
    bad += gk_check("linear_backward dw", &dw, tol);
    bad += gk_check("linear_backward db", &db, tol);
    gk_buf *all[] = {&inp, &w, &b, &out, &dout, &dinp, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) gk_free(all[i]);
    return bad;
}

static int t_linear(void) { return linear_case(TOL, 1) + linear_case(TOL, 0); }

static int t_linear_tf32(void) {
    cuda_kernels_set_tf32(1);
    int bad = linear_case(GK_TOL_TF32, 1);
    cuda_kernels_set_tf32(0);
    return bad;
}

/* ---- elementwise: one pattern for every f(x) with a backward that reads x or f(x) ------ */

typedef void (*fwd_fn)(float *, const float *, size_t);
typedef void (*bwd_fn)(float *, const float *, const float *, size_t);

/* from_out: the backward reads the forward output (relu) rather than the input */
static int unary_case(const char *name, fwd_fn cpu_f, fwd_fn gpu_f, bwd_fn cpu_b, bwd_fn gpu_b,
                      int from_out, float lo, float hi) {
    size_t n = 1031;
    char what[64];
    int bad = 0;
    gk_buf x = gk_rand(n, 11, lo, hi), y = gk_nan(n);
    cpu_f(y.h, x.h, n);
    gpu_f(y.d, x.d, n);
    snprintf(what, sizeof what, "%s_forward", name);
    bad += gk_check(what, &y, TOL);
    gk_buf dy = gk_rand(n, 12, -1, 1), dx = gk_rand(n, 13, -1, 1);
    cpu_b(dx.h, dy.h, from_out ? y.h : x.h, n);
    gpu_b(dx.d, dy.d, from_out ? y.d : x.d, n);
    snprintf(what, sizeof what, "%s_backward", name);
    bad += gk_check(what, &dx, TOL);
    gk_free(&x), gk_free(&y), gk_free(&dy), gk_free(&dx);
    return bad;
}

static int t_relu(void) {
    return unary_case("relu", relu_forward, cuda_relu_forward, relu_backward,
                      cuda_relu_backward, 1, -2, 2);
}
static int t_gelu(void) {
    return unary_case("gelu", gelu_forward, cuda_gelu_forward, gelu_backward,
                      cuda_gelu_backward, 0, -5, 5);
}
static int t_silu(void) {
    return unary_case("silu", silu_forward, cuda_silu_forward, silu_backward,
                      cuda_silu_backward, 0, -8, 8);
}

static int t_residual(void) {
    size_t n = 999;
    int bad = 0;
    gk_buf a = gk_rand(n, 21, -1, 1), b = gk_rand(n, 22, -1, 1), out = gk_nan(n);
    residual_forward(out.h, a.h, b.h, n);
    cuda_residual_forward(out.d, a.d, b.d, n);
    bad += gk_check("residual_forward", &out, TOL);
    /* da == db: x + x must receive the gradient twice */
    residual_backward(a.h, b.h, out.h, n);
    cuda_residual_backward(a.d, b.d, out.d, n);
    residual_backward(a.h, a.h, out.h, n);
    cuda_residual_backward(a.d, a.d, out.d, n);
    bad += gk_check("residual_backward da", &a, TOL);
    bad += gk_check("residual_backward db", &b, TOL);
    gk_free(&a), gk_free(&b), gk_free(&out);
    return bad;
}

static int t_mse(void) {
    size_t n = 5003;
    int bad = 0;
    gk_buf p = gk_rand(n, 31, -2, 2), t = gk_rand(n, 32, -2, 2), dp = gk_rand(n, 33, -1, 1);
    bad += gk_check_scalar("mse_forward", cuda_mse_forward(p.d, t.d, n), mse_forward(p.h, t.h, n),
                           TOL);
    mse_backward(dp.h, p.h, t.h, n, 0.7f);
    cuda_mse_backward(dp.d, p.d, t.d, n, 0.7f);
    bad += gk_check("mse_backward", &dp, TOL);
    gk_free(&p), gk_free(&t), gk_free(&dp);
    return bad;
}

/* ---- convolution and pooling -------------------------------------------------------- */

static int conv_case(int B, int C, int H, int W, int OC, int K, int pad) {
    int OH = H + 2 * pad - K + 1, OW = W + 2 * pad - K + 1, bad = 0;
    size_t in_n = (size_t)B * C * H * W, out_n = (size_t)B * OC * OH * OW;
    gk_buf x = gk_rand(in_n, 41, -1, 1), w = gk_rand((size_t)OC * C * K * K, 42, -1, 1);
    gk_buf b = gk_rand(OC, 43, -1, 1), y = gk_nan(out_n);
    float *hs = kernels_alloc(conv2d_scratch_floats(B, C, H, W, OC, K, pad));
    float *ds = cuda_kernels_alloc(cuda_conv2d_scratch_floats(B, C, H, W, OC, K, pad));
    conv2d_forward(y.h, x.h, w.h, b.h, hs, B, C, H, W, OC, K, pad);
    cuda_conv2d_forward(y.d, x.d, w.d, b.d, ds, B, C, H, W, OC, K, pad);
    char what[64];
    snprintf(what, sizeof what, "conv2d_forward K%d pad%d", K, pad);
    bad += gk_check(what, &y, TOL);
    gk_buf dy = gk_rand(out_n, 44, -1, 1), dx = gk_rand(in_n, 45, -1, 1);
    gk_buf dw = gk_rand(w.n, 46, -1, 1), db = gk_rand(OC, 47, -1, 1);
    conv2d_backward(dx.h, dw.h, db.h, dy.h, x.h, w.h, hs, B, C, H, W, OC, K, pad);
    cuda_conv2d_backward(dx.d, dw.d, db.d, dy.d, x.d, w.d, ds, B, C, H, W, OC, K, pad);
    snprintf(what, sizeof what, "conv2d_backward dinp K%d", K);
    bad += gk_check(what, &dx, TOL);
    snprintf(what, sizeof what, "conv2d_backward dw K%d", K);
    bad += gk_check(what, &dw, TOL);
    snprintf(what, sizeof what, "conv2d_backward db K%d", K);
    bad += gk_check(what, &db, TOL);
    kernels_free(hs);
    cuda_kernels_free(ds);
    gk_buf *all[] = {&x, &w, &b, &y, &dy, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) gk_free(all[i]);
    return bad;
}

static int t_conv2d(void) {
    return conv_case(3, 4, 9, 7, 5, 3, 1) + conv_case(2, 6, 5, 6, 3, 1, 0) +
           conv_case(2, 3, 8, 8, 4, 5, 2) + conv_case(3, 2, 7, 9, 6, 3, 0);
}

typedef void (*pool_fwd)(float *, const float *, int, int, int);

/* max pooling, average pooling and upsampling share a shape: BC planes of H x W */
static int window_case(const char *name, int BC, int H, int W, int out_scale_up) {
    size_t in_n = (size_t)BC * H * W;
    size_t out_n = out_scale_up ? in_n * 4 : in_n / 4;
    gk_buf x = gk_rand(in_n, 51, -1, 1), y = gk_nan(out_n);
    gk_buf dy = gk_rand(out_n, 52, -1, 1), dx = gk_rand(in_n, 53, -1, 1);
    if (!strcmp(name, "maxpool2x2")) {
        /* ties: a few windows with equal entries exercise the first-maximum rule */
        for (size_t i = 0; i + 1 < in_n; i += 37) x.h[i + 1] = x.h[i];
        cuda_kernels_to_device(x.d, x.h, in_n * sizeof(float));
        maxpool2x2_forward(y.h, x.h, BC, H, W);
        cuda_maxpool2x2_forward(y.d, x.d, BC, H, W);
        maxpool2x2_backward(dx.h, dy.h, x.h, BC, H, W);
        cuda_maxpool2x2_backward(dx.d, dy.d, x.d, BC, H, W);
    } else if (!strcmp(name, "avgpool2x2")) {
        avgpool2x2_forward(y.h, x.h, BC, H, W);
        cuda_avgpool2x2_forward(y.d, x.d, BC, H, W);
        avgpool2x2_backward(dx.h, dy.h, BC, H, W);
        cuda_avgpool2x2_backward(dx.d, dy.d, BC, H, W);
    } else {
        upsample2x_forward(y.h, x.h, BC, H, W);
        cuda_upsample2x_forward(y.d, x.d, BC, H, W);
        upsample2x_backward(dx.h, dy.h, BC, H, W);
        cuda_upsample2x_backward(dx.d, dy.d, BC, H, W);
    }
    char what[64];
    int bad = 0;
    snprintf(what, sizeof what, "%s_forward", name);
    bad += gk_check(what, &y, TOL);
    snprintf(what, sizeof what, "%s_backward", name);
    bad += gk_check(what, &dx, TOL);
    gk_free(&x), gk_free(&y), gk_free(&dy), gk_free(&dx);
    return bad;
}

static int t_maxpool2x2(void) { return window_case("maxpool2x2", 7, 10, 14, 0); }
static int t_avgpool2x2(void) { return window_case("avgpool2x2", 7, 10, 14, 0); }
static int t_upsample2x(void) { return window_case("upsample2x", 7, 5, 9, 1); }

/* ---- loss ----------------------------------------------------------------------------- */

static int t_softmax_xent(void) {
    int N = 13, V = 517, bad = 0;
    gk_buf logits = gk_rand((size_t)N * V, 61, -6, 6), probs = gk_nan((size_t)N * V);
    gk_buf losses = gk_nan(N);
    gk_ids tg = gk_rand_ids(N, 62, V);
    float want = softmax_xent_forward(probs.h, losses.h, logits.h, tg.h, N, V);
    float got = cuda_softmax_xent_forward(probs.d, losses.d, logits.d, tg.d, N, V);
    bad += gk_check_scalar("softmax_xent_forward mean loss", got, want, TOL);
    bad += gk_check("softmax_xent_forward probs", &probs, TOL);
    bad += gk_check("softmax_xent_forward losses", &losses, TOL);
    gk_buf dl = gk_rand((size_t)N * V, 63, -1, 1);
    softmax_xent_backward(dl.h, probs.h, tg.h, N, V, 1.0f / N);
    cuda_softmax_xent_backward(dl.d, probs.d, tg.d, N, V, 1.0f / N);
    bad += gk_check("softmax_xent_backward", &dl, TOL);
    gk_free(&logits), gk_free(&probs), gk_free(&losses), gk_free(&dl), gk_free_ids(&tg);
    return bad;
}

/* ---- transformer ------------------------------------------------------------------------ */

static int t_embedding(void) {
    int B = 3, T = 11, C = 300, V = 23, bad = 0; /* C > 256: two column blocks */
    gk_ids tok = gk_rand_ids((size_t)B * T, 71, V);
    gk_buf wte = gk_rand((size_t)V * C, 72, -1, 1), wpe = gk_rand((size_t)T * C, 73, -1, 1);
    gk_buf out = gk_nan((size_t)B * T * C);
    embedding_forward(out.h, tok.h, wte.h, wpe.h, B, T, C);
    cuda_embedding_forward(out.d, tok.d, wte.d, wpe.d, B, T, C);
    bad += gk_check("embedding_forward", &out, TOL);
    gk_buf dout = gk_rand(out.n, 74, -1, 1);
    embedding_backward(wte.h, wpe.h, dout.h, tok.h, B, T, C);
    cuda_embedding_backward(wte.d, wpe.d, dout.d, tok.d, B, T, C);
    bad += gk_check("embedding_backward dwte", &wte, TOL);
    bad += gk_check("embedding_backward dwpe", &wpe, TOL);
    gk_free(&wte), gk_free(&wpe), gk_free(&out), gk_free(&dout), gk_free_ids(&tok);
    return bad;
}

static int t_layernorm(void) {
    int N = 19, C = 70, bad = 0;
    gk_buf x = gk_rand((size_t)N * C, 81, -2, 3), w = gk_rand(C, 82, 0.5f, 1.5f);
    gk_buf b = gk_rand(C, 83, -1, 1), out = gk_nan(x.n), mean = gk_nan(N), rstd = gk_nan(N);
    layernorm_forward(out.h, mean.h, rstd.h, x.h, w.h, b.h, N, C);
    cuda_layernorm_forward(out.d, mean.d, rstd.d, x.d, w.d, b.d, N, C);
    bad += gk_check("layernorm_forward out", &out, TOL);
    bad += gk_check("layernorm_forward mean", &mean, TOL);
    bad += gk_check("layernorm_forward rstd", &rstd, TOL);
    gk_buf dout = gk_rand(x.n, 84, -1, 1), dx = gk_rand(x.n, 85, -1, 1);
    gk_buf dw = gk_rand(C, 86, -1, 1), db = gk_rand(C, 87, -1, 1);
    layernorm_backward(dx.h, dw.h, db.h, dout.h, x.h, w.h, mean.h, rstd.h, N, C);
    cuda_layernorm_backward(dx.d, dw.d, db.d, dout.d, x.d, w.d, mean.d, rstd.d, N, C);
    bad += gk_check("layernorm_backward dinp", &dx, TOL);
    bad += gk_check("layernorm_backward dweight", &dw, TOL);
    bad += gk_check("layernorm_backward dbias", &db, TOL);
    gk_buf *all[] = {&x, &w, &b, &out, &mean, &rstd, &dout, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) gk_free(all[i]);
    return bad;
}

static int attention_case(int causal) {
    int B = 2, T = 13, C = 24, NH = 3, bad = 0;
    const char *name = causal ? "attention" : "attention_full";
    gk_buf qkv = gk_rand((size_t)B * T * 3 * C, 91, -1, 1), out = gk_nan((size_t)B * T * C);
    gk_buf att = gk_nan((size_t)B * NH * T * T);
    if (causal) {
        attention_forward(out.h, att.h, qkv.h, B, T, C, NH);
        cuda_attention_forward(out.d, att.d, qkv.d, B, T, C, NH);
    } else {
        attention_full_forward(out.h, att.h, qkv.h, B, T, C, NH);
        cuda_attention_full_forward(out.d, att.d, qkv.d, B, T, C, NH);
    }
    char what[64];
    snprintf(what, sizeof what, "%s_forward out", name);
    bad += gk_check(what, &out, TOL);
    snprintf(what, sizeof what, "%s_forward att", name);
    bad += gk_check(what, &att, TOL);
    gk_buf dout = gk_rand(out.n, 92, -1, 1), dqkv = gk_rand(qkv.n, 93, -1, 1);
    float *hs = kernels_alloc(attention_scratch_floats(B, T, C, NH));
    float *ds = cuda_kernels_alloc(cuda_attention_scratch_floats(B, T, C, NH));
    if (causal) {
        attention_backward(dqkv.h, dout.h, qkv.h, att.h, hs, B, T, C, NH);
        cuda_attention_backward(dqkv.d, dout.d, qkv.d, att.d, ds, B, T, C, NH);
    } else {
        attention_full_backward(dqkv.h, dout.h, qkv.h, att.h, hs, B, T, C, NH);
        cuda_attention_full_backward(dqkv.d, dout.d, qkv.d, att.d, ds, B, T, C, NH);
    }
    snprintf(what, sizeof what, "%s_backward dqkv", name);
    bad += gk_check(what, &dqkv, TOL);
    kernels_free(hs);
    cuda_kernels_free(ds);
    gk_free(&qkv), gk_free(&out), gk_free(&att), gk_free(&dout), gk_free(&dqkv);
    return bad;
}

static int t_attention(void) { return attention_case(1); }
static int t_attention_full(void) { return attention_case(0); }

/* ---- image generation ------------------------------------------------------------------- */

static int t_groupnorm(void) {
    int B = 3, C = 12, HW = 100, G = 4, bad = 0; /* a group (300) outgrows a block */
    size_t n = (size_t)B * C * HW;
    gk_buf x = gk_rand(n, 101, -2, 3), w = gk_rand(C, 102, 0.5f, 1.5f), b = gk_rand(C, 103, -1, 1);
    gk_buf out = gk_nan(n), mean = gk_nan((size_t)B * G), rstd = gk_nan((size_t)B * G);
    groupnorm_forward(out.h, mean.h, rstd.h, x.h, w.h, b.h, B, C, HW, G);
    cuda_groupnorm_forward(out.d, mean.d, rstd.d, x.d, w.d, b.d, B, C, HW, G);
    bad += gk_check("groupnorm_forward out", &out, TOL);
    bad += gk_check("groupnorm_forward mean", &mean, TOL);
    bad += gk_check("groupnorm_forward rstd", &rstd, TOL);
    gk_buf dout = gk_rand(n, 104, -1, 1), dx = gk_rand(n, 105, -1, 1);
    gk_buf dw = gk_rand(C, 106, -1, 1), db = gk_rand(C, 107, -1, 1);
    groupnorm_backward(dx.h, dw.h, db.h, dout.h, x.h, w.h, mean.h, rstd.h, B, C, HW, G);
    cuda_groupnorm_backward(dx.d, dw.d, db.d, dout.d, x.d, w.d, mean.d, rstd.d, B, C, HW, G);
    bad += gk_check("groupnorm_backward dinp", &dx, TOL);
    bad += gk_check("groupnorm_backward dweight", &dw, TOL);
    bad += gk_check("groupnorm_backward dbias", &db, TOL);
    gk_buf *all[] = {&x, &w, &b, &out, &mean, &rstd, &dout, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) gk_free(all[i]);
    return bad;
}

static int t_concat_channels(void) {
    int B = 3, C1 = 5, C2 = 4, HW = 21, bad = 0;
    gk_buf a = gk_rand((size_t)B * C1 * HW, 111, -1, 1);
    gk_buf b = gk_rand((size_t)B * C2 * HW, 112, -1, 1);
    gk_buf out = gk_nan((size_t)B * (C1 + C2) * HW), dout = gk_rand(out.n, 113, -1, 1);
    concat_channels_forward(out.h, a.h, b.h, B, C1, C2, HW);
    cuda_concat_channels_forward(out.d, a.d, b.d, B, C1, C2, HW);
    bad += gk_check("concat_channels_forward", &out, TOL);
    concat_channels_backward(a.h, b.h, dout.h, B, C1, C2, HW);
    cuda_concat_channels_backward(a.d, b.d, dout.d, B, C1, C2, HW);
    bad += gk_check("concat_channels_backward da", &a, TOL);
    bad += gk_check("concat_channels_backward db", &b, TOL);
    gk_free(&a), gk_free(&b), gk_free(&out), gk_free(&dout);
    return bad;
}

static int t_add_channel(void) {
    int B = 3, C = 7, HW = 300, bad = 0; /* HW > 256: a row spans more than one block stride */
    size_t n = (size_t)B * C * HW;
    gk_buf x = gk_rand(n, 121, -1, 1), v = gk_rand((size_t)B * C, 122, -1, 1), out = gk_nan(n);
    add_channel_forward(out.h, x.h, v.h, B, C, HW);
    cuda_add_channel_forward(out.d, x.d, v.d, B, C, HW);
    bad += gk_check("add_channel_forward", &out, TOL);
    gk_buf dout = gk_rand(n, 123, -1, 1);
    add_channel_backward(x.h, v.h, dout.h, B, C, HW);
    cuda_add_channel_backward(x.d, v.d, dout.d, B, C, HW);
    bad += gk_check("add_channel_backward dinp", &x, TOL);
    bad += gk_check("add_channel_backward dv", &v, TOL);
    gk_free(&x), gk_free(&v), gk_free(&out), gk_free(&dout);
    return bad;
}

static int t_transpose_chw(void) {
    int B = 2, C = 37, HW = 45, bad = 0; /* both sides cross a 32-wide tile edge */
    size_t n = (size_t)B * C * HW;
    gk_buf x = gk_rand(n, 131, -1, 1), out = gk_nan(n), dout = gk_rand(n, 132, -1, 1);
    transpose_chw_forward(out.h, x.h, B, C, HW);
    cuda_transpose_chw_forward(out.d, x.d, B, C, HW);
    bad += gk_check("transpose_chw_forward", &out, TOL);
    transpose_chw_backward(x.h, dout.h, B, C, HW);
    cuda_transpose_chw_backward(x.d, dout.d, B, C, HW);
    bad += gk_check("transpose_chw_backward", &x, TOL);
    gk_free(&x), gk_free(&out), gk_free(&dout);
    return bad;
}

/* ---- moving averages and memory ---------------------------------------------------------- */

static int t_ema_update(void) {
    size_t n = 4099;
    int bad = 0;
    gk_buf ema = gk_rand(n, 141, -1, 1), x = gk_rand(n, 142, -1, 1);
    for (int k = 0; k < 3; k++) { /* a few steps, so the accumulation is exercised */
        ema_update(ema.h, x.h, n, 0.999f);
        cuda_ema_update(ema.d, x.d, n, 0.999f);
    }
    bad += gk_check("ema_update (3 steps, decay 0.999)", &ema, TOL);
    gk_free(&ema), gk_free(&x);
    return bad;
}

/* The copies must move bits unchanged: err < EXACT means err == 0. */
#define EXACT 1e-300

/* kernels_to_device / kernels_to_host / kernels_copy / kernels_zero at offsets inside
 * allocations (as the trainer's staging and the jobs' inputs use them), against memcpy and
 * memset on the host copies. */
static int t_memory(void) {
    size_t n = 1000, off = 37, len = 555;
    int bad = 0;
    gk_buf a = gk_rand(n, 151, -1, 1), b = gk_nan(n), src = gk_rand(len, 152, -5, 5);
    /* into the middle of a device buffer, from a host buffer */
    memcpy(a.h + off, src.h, len * sizeof(float));
    cuda_kernels_to_device(a.d + off, src.h, len * sizeof(float));
    bad += gk_check("kernels_to_device at an offset", &a, EXACT);
    /* device to device, between allocations; the rest of b stays NaN */
    memcpy(b.h + 3, a.h + off, len * sizeof(float));
    cuda_kernels_copy(b.d + 3, a.d + off, len * sizeof(float));
    bad += gk_check("kernels_copy between allocations", &b, EXACT);
    /* zero a sub-range */
    memset(a.h + 11, 0, 101 * sizeof(float));
    cuda_kernels_zero(a.d + 11, 101 * sizeof(float));
    bad += gk_check("kernels_zero of a sub-range", &a, EXACT);
    /* back to the host, from an offset: the bits the device holds */
    float *back = kernels_alloc(len);
    cuda_kernels_to_host(back, a.d + off, len * sizeof(float));
    int same = memcmp(back, a.h + off, len * sizeof(float)) == 0;
    printf("%s kernels_to_host from an offset (bitwise)\n", same ? "ok  " : "FAIL");
    bad += !same;
    /* zero bytes: nothing happens, whatever the pointers */
    cuda_kernels_to_device(a.d, NULL, 0);
    cuda_kernels_to_host(NULL, a.d, 0);
    cuda_kernels_copy(b.d, a.d, 0);
    cuda_kernels_zero(a.d, 0);
    bad += gk_check("zero-byte calls change nothing", &a, EXACT);
    kernels_free(back);
    gk_free(&a), gk_free(&b), gk_free(&src);
    return bad;
}

/* ---- driver ----------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*run)(void);
} cases[] = {
    {"linear", t_linear},           {"linear_tf32", t_linear_tf32},
    {"relu", t_relu},               {"gelu", t_gelu},
    {"silu", t_silu},               {"residual", t_residual},
    {"mse", t_mse},                 {"conv2d", t_conv2d},
    {"maxpool2x2", t_maxpool2x2},   {"avgpool2x2", t_avgpool2x2},
    {"upsample2x", t_upsample2x},   {"softmax_xent", t_softmax_xent},
    {"embedding", t_embedding},     {"layernorm", t_layernorm},
    {"attention", t_attention},     {"attention_full", t_attention_full},
    {"groupnorm", t_groupnorm},     {"concat_channels", t_concat_channels},
    {"add_channel", t_add_channel}, {"transpose_chw", t_transpose_chw},
    {"ema_update", t_ema_update},   {"memory", t_memory},
};
#define NCASES (sizeof cases / sizeof *cases)

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASE|all|--list\n", argv[0]);
        return 2;
    }
    if (!strcmp(argv[1], "--list")) {
        for (size_t i = 0; i < NCASES; i++) printf("%s\n", cases[i].name);
        return 0;
    }
    int ran = 0, failed = 0;
    for (size_t i = 0; i < NCASES; i++) {
        if (strcmp(argv[1], "all") && strcmp(argv[1], cases[i].name)) continue;
        if (!ran) gk_require_gpu(argv[1]);
        ran++;
        failed += cases[i].run() != 0;
    }
    if (!ran) {
        fprintf(stderr, "%s: no case named '%s' (try --list)\n", argv[0], argv[1]);
        return 2;
    }
    cuda_kernels_synchronize();
    printf("%d passed, %d failed\n", ran - failed, failed);
    return failed ? 1 : 0;
}
