/* test_kernels_sgemm.c: kc_sgemm (our AVX-512 kernel where the CPU has it, else OpenBLAS)
 * against a double-precision product, over the shapes that exercise its edges: tiles cut
 * by M, N and K, blocks larger than one packing buffer, every transpose, padded leading
 * dimensions, alpha, and beta = 0 over a C full of NaN (which must never be read). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "gradcheck.h"
#include "kernels.h"

/* n floats uniform in [-1, 1), each call of a test from the next seed */
static float *filled(size_t n, unsigned *seed) {
    float *p = kernels_alloc(n);
    gc_fill_uniform(p, n, (*seed)++, -1.0f, 1.0f);
    return p;
}

/* One product, checked element by element: |C - ref| <= 1e-5 * sum |a||b| + 1e-6 * |beta C|,
 * a float32 sum of K products is good to a few K*eps of its absolute terms. */
static void check(int ta, int tb, int M, int N, int K, float alpha, float beta, int pad) {
    unsigned st = (unsigned)(M * 7919 + N * 104729 + K * 31 + ta * 2 + tb);
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t arows = ta ? K : M, brows = tb ? N : K;
    float *A = filled(arows * lda, &st), *B = filled(brows * ldb, &st);
    float *C = filled((size_t)M * ldc, &st), *C0 = kernels_alloc((size_t)M * ldc);
    for (size_t i = 0; i < (size_t)M * ldc; i++) {
        if (beta == 0.0f && (int)(i % ldc) < N) C[i] = NAN;
        C0[i] = C[i];
    }
    kc_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    int bad = 0;
    for (int i = 0; i < M && bad < 5; i++)
        for (int j = 0; j < ldc && bad < 5; j++) {
            float got = C[(size_t)i * ldc + j], before = C0[(size_t)i * ldc + j];
            if (j >= N) { /* the padding of C is not ours to write */
                if (!(got == before || (isnan(got) && isnan(before)))) bad++;
                cr_expect(got == before || (isnan(got) && isnan(before)),
                          "M%d N%d K%d ta%d tb%d: padding C[%d,%d] written", M, N, K, ta, tb, i, j);
                continue;
            }
            double ref = 0.0, mag = 0.0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                ref += a * b;
                mag += fabs(a * b);
            }
            ref *= alpha;
            if (beta != 0.0f) ref += (double)beta * before;
            double tol = 1e-5 * fabs(alpha) * mag + 1e-30;
            if (beta != 0.0f) tol += 1e-6 * fabs(beta * before);
            if (!(fabs(got - ref) <= tol)) bad++;
            cr_expect(fabs(got - ref) <= tol,
                      "M%d N%d K%d ta%d tb%d alpha %g beta %g pad %d: C[%d,%d] = %.7g, want %.7g",
                      M, N, K, ta, tb, alpha, beta, pad, i, j, got, ref);
        }
    kernels_free(A);
    kernels_free(B);
    kernels_free(C);
    kernels_free(C0);
}

static void sweep(int ta, int tb) {
    /* around the tile (12 x 32), the half tile (16), a K slice (256), and the packed blocks of
     * A (144 rows) and B (1024 columns) */
    const int ms[] = {1, 5, 12, 13, 16, 28, 64, 145};
    const int ns[] = {1, 10, 16, 17, 33, 49, 64};
    const int ks[] = {1, 9, 16, 25, 257};
    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof ks / sizeof *ks; c++)
                check(ta, tb, ms[a], ns[b], ks[c], 1.0f, (a + b + c) % 3 == 0 ? 0.0f : 1.0f, 0);
}

Test(sgemm, nn) { sweep(0, 0); }
Test(sgemm, nt) { sweep(0, 1); }
Test(sgemm, tn) { sweep(1, 0); }
Test(sgemm, tt) { sweep(1, 1); }

Test(sgemm, alpha_beta_and_padded_rows) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check(ta, tb, 30, 40, 50, -0.7f, 0.5f, 3);
            check(ta, tb, 30, 40, 50, 2.0f, 0.0f, 5);
            check(ta, tb, 13, 17, 300, 1.0f, -1.0f, 1);
        }
}

Test(sgemm, wider_than_a_packed_block) {
    check(0, 0, 20, 1100, 40, 1.0f, 0.0f, 0);
    check(0, 1, 20, 1100, 40, 1.0f, 1.0f, 0);
    check(1, 0, 300, 50, 600, 1.0f, 0.0f, 2);
}

/* kc_sgemm_parallel cuts C between threads; with our kernel each piece equals the same piece
 * of the one-thread product bit for bit (results depend only on K's slicing). OpenBLAS
 * promises no such thing. */
Test(sgemm, pieces_equal_the_whole) {
    if (kc_gemm_is_openblas()) cr_skip_test("the GEMM is OpenBLAS's here");
    unsigned st = 7;
    int M = 70, N = 100, K = 300;
    float *A = filled((size_t)M * K, &st), *B = filled((size_t)K * N, &st);
    float *whole = kernels_alloc((size_t)M * N), *parts = kernels_alloc((size_t)M * N);
    kc_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, whole, N);
    kernels_set_threads(2);
    kc_force_parallel(1);
    kc_sgemm_parallel(0, 0, M, N, K, A, K, B, N, 0.0f, parts, N, NULL);
    kc_force_parallel(0);
    for (int i = 0; i < M * N; i++) cr_assert_eq(whole[i], parts[i], "element %d differs", i);
    kernels_free(A);
    kernels_free(B);
    kernels_free(whole);
    kernels_free(parts);
}

/* kc_pack_a + kc_sgemm_packed give what kc_sgemm gives, bit for bit, across K slices and
 * blocks of rows, for both layouts of A and of B */
Test(sgemm, prepacked_a_equals_packing_on_the_fly) {
    const int shapes[][3] = {{1, 1, 1}, {13, 40, 9}, {150, 70, 300}, {32, 63, 96}, {64, 1100, 20}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                unsigned st = (unsigned)(s * 4 + ta * 2 + tb + 1);
                int lda = ta ? M : K, ldb = tb ? K : N;
                float *A = filled((size_t)M * K, &st), *B = filled((size_t)K * N, &st);
                float *C0 = filled((size_t)M * N, &st), *C1 = kernels_alloc((size_t)M * N);
                float *pa = kernels_alloc(kc_packed_a_floats(M, K));
                memcpy(C1, C0, (size_t)M * N * sizeof(float));
                kc_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.5f, C0, N);
                kc_pack_a(pa, ta, M, K, A, lda);
                kc_sgemm_packed(M, N, K, pa, B, ldb, tb, 0.5f, C1, N);
                int same = memcmp(C0, C1, (size_t)M * N * sizeof(float)) == 0;
                cr_expect(same, "M%d N%d K%d ta%d tb%d: packed A differs", M, N, K, ta, tb);
                kernels_free(A);
                kernels_free(B);
                kernels_free(C0);
                kernels_free(C1);
                kernels_free(pa);
            }
}
