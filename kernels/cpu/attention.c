/* attention.c: multi-head self-attention, causal (GPT) or full (the U-Net's attention over
 * pixels), one (batch, head) pair at a time. One implementation serves both: a causal
 * flag limits each query row to the keys up to itself.
 *
 * For one pair, with Q, K, V the head's [T,HS] slices of qkv (row stride 3C):
 *   P = softmax(Q K^T / sqrt(HS))   (masked to keys <= query when causal; stored in att)
 *   O = P V                                        (the head's columns of out)
 * and backward, with dO the head's columns of dout and s = 1/sqrt(HS):
 *   dP = dO V^T;  dS = s P * (dP - rowsum(P * dP))
 *   dQ += dS K;   dK += dS^T Q;   dV += P^T dO
 * The products go to BLAS: on one EPYC core, forward/backward per layer took 0.37/0.51 ms
 * with sgemm against 1.0/2.9 ms with vectorized hand loops at T=64, HS=32 (B=12, NH=4),
 * and 21/40 ms against 53/390 ms at T=1024, HS=64 (B=1, NH=12). Causality halves the work:
 * queries are taken in blocks of ATT_BLOCK rows and each block multiplies only the keys up
 * to its last row, so only the diagonal blocks compute (then discard) entries above the
 * diagonal; at T=1024 that is 2.2x faster than full T*T products, and blocks of 64, 128
 * and 256 rows time within 5% of each other. Full attention takes the same blocks with every
 * key in each (at the U-Net's T = 49 that is one block).
 *
 * Pairs are independent and each writes its own columns of out/dqkv, so threads take
 * whole pairs: results do not depend on the thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu.h"
#include "kernels.h"
#include "vecmath.h"

#define ATT_BLOCK 128    /* query rows per block */
#define ATT_MAX_SLOTS 64 /* T*T scratch matrices, hence threads, for the backward pass */

/* the shape of one head's slices: T rows of HS floats, with row stride ld = 3C in qkv and
 * dqkv and ldo = C in out and dout; its slice of att is a dense T*T block. causal: query i
 * sees keys 0..i only, else all T. */
typedef struct {
    int T, HS, ld, ldo, causal;
} head_dims;

/* keys that query rows up to r1 (exclusive) see, and that query row i sees */
static int block_keys(head_dims d, int r1) { return d.causal ? r1 : d.T; }
static int row_keys(head_dims d, int i) { return d.causal ? i + 1 : d.T; }

/* Heads must split the channels evenly; anything else would silently mix heads. */
static void check_heads(int C, int NH, const char *op) {
    if (NH <= 0 || C % NH != 0) {
        fprintf(stderr, "%s: C = %d channels do not split into NH = %d heads\n", op, C, NH);
        abort();
    }
}

/* a row of P: softmax over the first n entries of s (scaled scores), zeros up to T.
 * Rows are short (n <= T), so the scalar tails of the lane loops would cost as much as the
 * vector bodies: the row is padded to whole 16-float chunks instead, with -inf (no effect on
 * the max) before exp and zeros (no effect on the sum) after it. */
static void softmax_row(float *s, int n, int T) {
    int n16 = (n + VM_LANES - 1) / VM_LANES * VM_LANES;
    n16 = n16 < T ? n16 : T;
    for (int j = n; j < n16; j++) s[j] = -INFINITY;
    float m = vm_max(s, n16);
    for (int j = 0; j < n16; j++) s[j] = vm_expf(s[j] - m);
    for (int j = n; j < T; j++) s[j] = 0.0f;
    float inv = 1.0f / vm_sum(s, n16);
    for (int j = 0; j < n16; j++) s[j] *= inv;
}

/* o[T,HS] = softmax(q k^T * scale) v, masked when causal; p[T,T] receives the
 * probabilities */
static void head_forward(float *o, float *p, const float *q, const float *k, const float *v,
                         head_dims d, float scale) {
    for (int r0 = 0; r0 < d.T; r0 += ATT_BLOCK) {
        int r1 = r0 + ATT_BLOCK < d.T ? r0 + ATT_BLOCK : d.T, nk = block_keys(d, r1);
        float *pb = p + (size_t)r0 * d.T;
        /* P[r0:r1, 0:nk] = scale Q[r0:r1] K[0:nk]^T */
        kc_sgemm(0, 1, r1 - r0, nk, d.HS, scale, q + (size_t)r0 * d.ld, d.ld, k, d.ld, 0.0f,
                 pb, d.T);
        for (int i = r0; i < r1; i++) softmax_row(p + (size_t)i * d.T, row_keys(d, i), d.T);
        /* O[r0:r1] = P[r0:r1, 0:nk] V[0:nk] (when causal P is zero above the diagonal) */
        kc_sgemm(0, 0, r1 - r0, d.HS, nk, 1.0f, pb, d.T, v, d.ld, 0.0f,
                 o + (size_t)r0 * d.ldo, d.ldo);
    }
}

static void forward_pairs(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                          int causal, const char *op) {
    check_heads(C, NH, op);
    int HS = C / NH, pairs = B * NH;
    head_dims d = {T, HS, 3 * C, C, causal};
    float scale = 1.0f / sqrtf((float)HS);
    int nt = kc_threads_for((double)pairs * T * T * HS, 65536.0);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(pairs, KC_NT(), KC_TID(), &lo, &hi);
        for (int bh = lo; bh < hi; bh++) {
            int b = bh / NH, h = bh % NH;
            const float *q = qkv + (size_t)b * T * d.ld + (size_t)h * HS;
            head_forward(out + (size_t)b * T * C + (size_t)h * HS, att + (size_t)bh * T * T,
                         q, q + C, q + 2 * C, d, scale);
        }
    }
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    forward_pairs(out, att, qkv, B, T, C, NH, 1, "attention_forward");
}

void attention_full_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                            int NH) {
    forward_pairs(out, att, qkv, B, T, C, NH, 0, "attention_full_forward");
}

static int scratch_slots(int B, int NH) {
    return B * NH < ATT_MAX_SLOTS ? B * NH : ATT_MAX_SLOTS;
}

/* One T*T matrix (dP, then dS in place) per thread, and at most ATT_MAX_SLOTS threads, so
 * the size depends on the shapes only, never on a thread count that may change later.
 * Causal and full attention need the same: full rows only fill more of each matrix. */
size_t attention_scratch_floats(int B, int T, int C, int NH) {
    check_heads(C, NH, "attention_scratch_floats");
    return (size_t)scratch_slots(B, NH) * kc_round16((size_t)T * T);
}

/* rows [r0, r1) of dS, in place over dP: ds[i, j] = scale p (dp - <p, dp>_i) for the keys
 * row i sees; when causal, zero for i < j < r1 (the block's products read those columns) */
static void softmax_backward_rows(float *ds, const float *p, head_dims d, int r0, int r1,
                                  float scale) {
    int T = d.T;
    for (int i = r0; i < r1; i++) {
        float *dr = ds + (size_t)i * T;
        const float *pr = p + (size_t)i * T;
        int n = row_keys(d, i);
        float dot = vm_dot(pr, dr, n);
        for (int j = 0; j < n; j++) dr[j] = scale * pr[j] * (dr[j] - dot);
        for (int j = n; j < r1; j++) dr[j] = 0.0f;
    }
}

/* dq, dk, dv [T,HS] (stride ld) += the head's gradients; ds: T*T scratch */
static void head_backward(float *dq, float *dk, float *dv, float *ds, const float *dout,
                          const float *q, const float *k, const float *v, const float *p,
                          head_dims d, float scale) {
    int T = d.T;
    for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
        int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T, nk = block_keys(d, r1);
        float *db = ds + (size_t)r0 * T;
        /* dP[r0:r1, 0:nk] = dO[r0:r1] V[0:nk]^T */
        kc_sgemm(0, 1, r1 - r0, nk, d.HS, 1.0f, dout + (size_t)r0 * d.ldo, d.ldo, v, d.ld,
                 0.0f, db, T);
        softmax_backward_rows(ds, p, d, r0, r1, scale);
        /* dQ[r0:r1] += dS[r0:r1, 0:nk] K[0:nk] */
        kc_sgemm(0, 0, r1 - r0, d.HS, nk, 1.0f, db, T, k, d.ld, 1.0f, dq + (size_t)r0 * d.ld,
                 d.ld);
    }
    /* key blocks: when causal, key j only receives from queries i >= j, i.e. rows c0.. of
     * dS and P; else from every query */
    for (int c0 = 0; c0 < T; c0 += ATT_BLOCK) {
        int c1 = c0 + ATT_BLOCK < T ? c0 + ATT_BLOCK : T, q0 = d.causal ? c0 : 0;
        size_t at = (size_t)q0 * T + c0;
        /* dK[c0:c1] += dS[q0:T, c0:c1]^T Q[q0:T] */
        kc_sgemm(1, 0, c1 - c0, d.HS, T - q0, 1.0f, ds + at, T, q + (size_t)q0 * d.ld, d.ld,
                 1.0f, dk + (size_t)c0 * d.ld, d.ld);
        /* dV[c0:c1] += P[q0:T, c0:c1]^T dO[q0:T] */
        kc_sgemm(1, 0, c1 - c0, d.HS, T - q0, 1.0f, p + at, T, dout + (size_t)q0 * d.ldo,
                 d.ldo, 1.0f, dv + (size_t)c0 * d.ld, d.ld);
    }
}

static void backward_pairs(float *dqkv, const float *dout, const float *qkv, const float *att,
                           float *scratch, int B, int T, int C, int NH, int causal,
                           const char *op) {
    if (!dqkv) return;
    check_heads(C, NH, op);
    int HS = C / NH, pairs = B * NH, slots = scratch_slots(B, NH);
    head_dims d = {T, HS, 3 * C, C, causal};
    float scale = 1.0f / sqrtf((float)HS);
    size_t slot_floats = kc_round16((size_t)T * T);
    int nt = kc_threads_for((double)pairs * T * T * HS, 65536.0);
    nt = nt < slots ? nt : slots;
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(pairs, KC_NT(), KC_TID(), &lo, &hi);
        float *ds = scratch + (size_t)KC_TID() * slot_floats;
        for (int bh = lo; bh < hi; bh++) {
            int b = bh / NH, h = bh % NH;
            size_t off = (size_t)b * T * d.ld + (size_t)h * HS;
            const float *q = qkv + off;
            float *dq = dqkv + off;
            head_backward(dq, dq + C, dq + 2 * C, ds, dout + (size_t)b * T * C + (size_t)h * HS,
                          q, q + C, q + 2 * C, att + (size_t)bh * T * T, d, scale);
        }
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                        float *scratch, int B, int T, int C, int NH) {
    backward_pairs(dqkv, dout, qkv, att, scratch, B, T, C, NH, 1, "attention_backward");
}

void attention_full_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                             float *scratch, int B, int T, int C, int NH) {
    backward_pairs(dqkv, dout, qkv, att, scratch, B, T, C, NH, 0, "attention_full_backward");
}
