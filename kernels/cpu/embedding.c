/* embedding.c: token + position embeddings, out[b,t] = wte[tokens[b,t]] + wpe[t]. */
#include <stdio.h>
#include <stdlib.h>

#include "cpu.h"
#include "kernels.h"

#define EMB_GRAIN 32768.0 /* floats written per thread */

/* The signature carries no V, so only negative ids can be caught here; ids >= V are the
 * caller's (the data loader's) to prevent. */
static void check_tokens(const int32_t *tokens, int N, const char *op) {
    for (int n = 0; n < N; n++)
        if (tokens[n] < 0) {
            fprintf(stderr, "%s: tokens[%d] = %d is negative\n", op, n, (int)tokens[n]);
            abort();
        }
}

/* rows [lo, hi) of out[B*T, C] */
static void embed_rows(float *restrict out, const int32_t *tokens, const float *restrict wte,
                       const float *restrict wpe, int T, int C, int lo, int hi) {
    for (int n = lo; n < hi; n++) {
        const float *te = wte + (size_t)tokens[n] * C;
        const float *pe = wpe + (size_t)(n % T) * C;
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = te[c] + pe[c];
    }
}

/* out[B,T,C] from tokens[B,T], wte[V,C], wpe[T,C] */
void embedding_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                       int B, int T, int C) {
    check_tokens(tokens, B * T, "embedding_forward");
    int nt = kc_threads_for((double)B * T * C, EMB_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(B * T, KC_NT(), KC_TID(), &lo, &hi);
        embed_rows(out, tokens, wte, wpe, T, C, lo, hi);
    }
}

/* dwte[:, c0:c1] += dout[n, c0:c1] for every position n, in position order. Cutting the
 * columns (not the positions) between threads means no two threads ever add into the same
 * element, and each element receives its terms in the same order at any thread count. */
static void scatter_cols(float *restrict dwte, const float *restrict dout,
                         const int32_t *tokens, int N, int C, int c0, int c1) {
    for (int n = 0; n < N; n++) {
        float *d = dwte + (size_t)tokens[n] * C;
        const float *g = dout + (size_t)n * C;
        for (int c = c0; c < c1; c++) d[c] += g[c];
    }
}

/* dwpe[T*C] (flat [lo, hi)) += sum over b of dout[b], batch in order */
static void sum_batch(float *restrict dwpe, const float *restrict dout, int B, size_t TC,
                      size_t lo, size_t hi) {
    for (int b = 0; b < B; b++) {
        const float *g = dout + (size_t)b * TC;
        for (size_t i = lo; i < hi; i++) dwpe[i] += g[i];
    }
}

void embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                        int B, int T, int C) {
    if (!dwte && !dwpe) return;
    if (dwte) check_tokens(tokens, B * T, "embedding_backward");
    size_t TC = (size_t)T * C;
    int nt = kc_threads_for((double)B * TC * ((dwte != NULL) + (dwpe != NULL)), EMB_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        if (dwte) {
            size_t c0, c1; /* whole cache lines of each row per thread where C allows */
            kc_split16((size_t)C, KC_NT(), KC_TID(), &c0, &c1);
            scatter_cols(dwte, dout, tokens, B * T, C, (int)c0, (int)c1);
        }
        if (dwpe) {
            size_t lo, hi;
            kc_split16(TC, KC_NT(), KC_TID(), &lo, &hi);
            sum_batch(dwpe, dout, B, TC, lo, hi);
        }
    }
}
