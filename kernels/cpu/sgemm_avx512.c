/* sgemm_avx512.c: the single-thread SGEMM that kc_sgemm runs on AVX-512 CPUs.
 *
 * Why our own: OpenBLAS 0.3.21 on these machines runs its Haswell (AVX2) kernels
 * (OPENBLAS_CORETYPE is pinned, and must stay so), half the FMA width the cores have; and
 * our products are small (tens to a few hundred rows), where packing and edges matter as
 * much as the inner loop. This is the usual blocked scheme (Goto; BLIS): K is cut into
 * KC-deep slices and the columns of C into NC-wide blocks; op(B)'s slice of a block is packed
 * into NR-column panels and op(A)'s into MR-row slivers, both k-major and zero-padded to
 * whole panels, so the micro-kernel reads both operands with unit stride and never tests an
 * edge. The micro-kernel holds an MR x NR tile of C in 24 of the 32 zmm registers and does
 * 24 FMAs per k against 2 loads of B and 12 broadcasts of A; edges are handled only where C
 * is read and written, with masks.
 *
 * Results do not depend on the blocking of M or N, only on K's slicing (fixed), so a piece
 * of C computed by one thread (kc_sgemm_parallel) equals the same piece of the whole. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu.h" /* with <immintrin.h> where the target has AVX-512 */

#ifdef __AVX512F__

#define MR 12   /* rows of the C tile: broadcasts of A */
#define NR 32   /* columns of the C tile: two zmm of B */
#define KC 256  /* depth of a slice: an NR panel of B (32 KB) stays in L1 */
#define MC 144  /* rows of A packed at once (144 KB, in L2); a multiple of MR */
#define NC 1024 /* columns of B packed at once (1 MB at KC); a multiple of NR */

/* Packing buffers, one pair per thread, allocated on the thread's first GEMM and freed when
 * it exits: too large for worker-thread stacks, and per-call allocation would page-fault. */
typedef struct {
    float a[MC / 8 * MR * KC]; /* slivers of 8 to 12 rows, each MR wide */
    float b[KC * NC];
} pack_bufs;

static pthread_key_t g_pack_key;
static pthread_once_t g_pack_once = PTHREAD_ONCE_INIT;

static void pack_key_create(void) {
    if (pthread_key_create(&g_pack_key, free) != 0) {
        fprintf(stderr, "sgemm: cannot create the packing-buffer key\n");
        abort();
    }
}

static pack_bufs *thread_pack(void) {
    pthread_once(&g_pack_once, pack_key_create);
    pack_bufs *p = pthread_getspecific(g_pack_key);
    if (p) return p;
    p = aligned_alloc(64, sizeof *p);
    if (!p || pthread_setspecific(g_pack_key, p) != 0) {
        fprintf(stderr, "sgemm: out of memory for packing buffers (%zu bytes)\n", sizeof *p);
        abort();
    }
    return p;
}

static inline int min_int(int a, int b) { return a < b ? a : b; }

/* Rows of the next tile when `left` rows remain: 12, except that 13 to 16 go as 8 + 5..8,
 * where 12 + 1..4 would leave a tile of 4 rows (half the FMAs per load of a full one). */
static inline int tile_rows(int left) { return left > 12 && left <= 16 ? 8 : min_int(MR, left); }

/* ---- packing -------------------------------------------------------------------------- */

/* 16 rows of 16 floats r[0..15] transposed in place: r[i][j] becomes r[j][i]. */
static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* u[4q + j] holds, in 128-bit lane l, column 4l + j of rows 4q..4q+3 */
    for (int j = 0; j < 4; j++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
        __m512 v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
        __m512 w0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
        __m512 w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
        r[j] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
    }
}

/* dst[k*MR + r] = op(A)[i0 + ir + r, p0 + k] for slivers ir = 0, MR, ... < mc; rows past mc
 * are zero. */
static void pack_a(float *restrict dst, const float *A, int lda, int ta, int i0, int mc, int p0,
                   int kc) {
    for (int ir = 0, m; ir < mc; ir += m, dst += (size_t)MR * kc) {
        m = tile_rows(mc - ir);
        if (ta) { /* op(A)[i,k] = A[k*lda + i]: each k is a contiguous run of rows */
            __mmask16 mask = kc_lanes(m);
            const float *s = A + (size_t)p0 * lda + i0 + ir;
            for (int k = 0; k < kc; k++, s += lda)
                _mm512_mask_storeu_ps(dst + (size_t)k * MR, 0x0FFF,
                                      _mm512_maskz_loadu_ps(mask, s));
            continue;
        }
        /* op(A)[i,k] = A[i*lda + k]: each row is a run of k; 16 x 16 blocks transposed, of
         * which the first MR rows are kept */
        for (int k0 = 0; k0 < kc; k0 += 16) {
            __mmask16 km = kc_lanes(kc - k0);
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < m ? _mm512_maskz_loadu_ps(km, A + (size_t)(i0 + ir + i) * lda + p0 + k0)
                             : _mm512_setzero_ps();
            transpose16(r);
            int rows = min_int(16, kc - k0);
            for (int k = 0; k < rows; k++)
                _mm512_mask_storeu_ps(dst + (size_t)(k0 + k) * MR, 0x0FFF, r[k]);
        }
    }
}

/* dst[k*NR + c] = op(B)[p0 + k, j0 + jr + c] for panels jr = 0, NR, ... < nc; columns past
 * nc are zero. */
static void pack_b(float *restrict dst, const float *B, int ldb, int tb, int j0, int nc, int p0,
                   int kc) {
    for (int jr = 0; jr < nc; jr += NR, dst += (size_t)NR * kc) {
        int n = min_int(NR, nc - jr);
        if (!tb) { /* op(B)[k,j] = B[k*ldb + j]: each k is a contiguous run of columns */
            __mmask16 m0 = kc_lanes(n), m1 = kc_lanes(n - 16);
            const float *s = B + (size_t)p0 * ldb + j0 + jr;
            for (int k = 0; k < kc; k++, s += ldb) {
                _mm512_store_ps(dst + (size_t)k * NR, _mm512_maskz_loadu_ps(m0, s));
                _mm512_store_ps(dst + (size_t)k * NR + 16, _mm512_maskz_loadu_ps(m1, s + 16));
            }
            continue;
        }
        /* op(B)[k,j] = B[j*ldb + k]: each column is a run of k; 16 x 16 blocks transposed */
        for (int g = 0; g < NR; g += 16)
            for (int k0 = 0; k0 < kc; k0 += 16) {
                __mmask16 km = kc_lanes(kc - k0);
                __m512 r[16];
                for (int c = 0; c < 16; c++)
                    r[c] = g + c < n ? _mm512_maskz_loadu_ps(
                                           km, B + (size_t)(j0 + jr + g + c) * ldb + p0 + k0)
                                     : _mm512_setzero_ps();
                transpose16(r);
                int rows = min_int(16, kc - k0);
                for (int k = 0; k < rows; k++) _mm512_store_ps(dst + (size_t)(k0 + k) * NR + g, r[k]);
            }
    }
}

/* ---- packing a convolution's columns straight from the padded image ------------------ */

/* Where op(B) comes from: a stored matrix, or a convolution's columns (cols_t: transposed). */
typedef struct {
    const float *B;
    int ldb, tb;
    const kc_cols *cols;
    int cols_t;
} b_source;

/* How n <= 16 consecutive pixels of a columns row lie in the padded image: lanes in mask[s]
 * read (row base + off[s])[lane], one segment per output row the pixels touch. */
typedef struct {
    int n;
    __mmask16 mask[16];
    ptrdiff_t off[16];
} pixel_segs;

static void pixel_segments(pixel_segs *sg, const kc_cols *v, int p, int n) {
    int y = p / v->OW, x = p % v->OW;
    sg->n = 0;
    for (int j = 0; j < n; y++, x = 0) {
        int run = min_int(v->OW - x, n - j);
        sg->mask[sg->n] = (__mmask16)(kc_lanes(j + run) & ~kc_lanes(j));
        sg->off[sg->n] = (ptrdiff_t)y * v->PW + x - j;
        sg->n++;
        j += run;
    }
}

/* 16 consecutive pixels of the columns row whose image row starts at base. The address of a
 * segment may lie before base; only its own lanes are read (masked loads do not fault).
 * nseg is sg->n, a constant where the callers specialize on it (KC_WITH_NSEG), so that the loop
 * unrolls and its masks stay in registers. */
static inline __attribute__((always_inline)) __m512 pixels16(const float *base, const pixel_segs *sg,
                                                             const int nseg) {
    __m512 v = _mm512_setzero_ps();
    for (int s = 0; s < nseg; s++)
        v = _mm512_mask_loadu_ps(v, sg->mask[s], (const float *)((uintptr_t)base +
                                                                   sg->off[s] * (ptrdiff_t)sizeof(float)));
    return v;
}

/* offset in pad of columns row r = (c, ky, kx): where its pixel (0, 0) reads */
static inline size_t row_offset(const kc_cols *v, int r) {
    int KK = v->K * v->K, c = r / KK, ky = r % KK / v->K, kx = r % v->K;
    return ((size_t)c * v->PH + ky) * v->PW + kx;
}

/* As pack_b, with op(B) = the columns: k = row, j = pixel; each panel's two halves of 16
 * pixels are filled in turn. */
static void pack_cols(float *restrict dst, const kc_cols *v, int j0, int nc, int p0, int kc) {
    size_t roff[KC];
    for (int k = 0; k < kc; k++) roff[k] = row_offset(v, p0 + k);
    for (int jr = 0; jr < nc; jr += NR, dst += (size_t)NR * kc) {
        int n = min_int(NR, nc - jr);
        for (int h = 0; h < 2; h++) {
            pixel_segs sg;
            pixel_segments(&sg, v, j0 + jr + 16 * h, min_int(16, n - 16 * h));
            float *d = dst + 16 * h;
            KC_WITH_NSEG(sg.n, for (int k = 0; k < kc; k++)
                                _mm512_store_ps(d + (size_t)k * NR, pixels16(v->pad + roff[k], &sg, NSEG)))
        }
    }
}

/* As pack_b, with op(B) = the columns transposed: k = pixel, j = row; 16 x 16 transposes. */
static void pack_cols_t(float *restrict dst, const kc_cols *v, int j0, int nc, int p0, int kc) {
    pixel_segs segs[KC / 16];
    for (int k0 = 0; k0 < kc; k0 += 16) pixel_segments(&segs[k0 / 16], v, p0 + k0, min_int(16, kc - k0));
    for (int jr = 0; jr < nc; jr += NR, dst += (size_t)NR * kc) {
        int n = min_int(NR, nc - jr);
        for (int g = 0; g < NR; g += 16) {
            size_t roff[16];
            int rows_here = min_int(16, n - g);
            for (int c = 0; c < 16; c++) roff[c] = c < rows_here ? row_offset(v, j0 + jr + g + c) : 0;
            for (int k0 = 0; k0 < kc; k0 += 16) {
                const pixel_segs *sg = &segs[k0 / 16];
                __m512 r[16];
                KC_WITH_NSEG(sg->n, for (int c = 0; c < 16; c++) r[c] = c < rows_here
                                                                         ? pixels16(v->pad + roff[c], sg, NSEG)
                                                                         : _mm512_setzero_ps())
                transpose16(r);
                int rows = min_int(16, kc - k0);
                for (int k = 0; k < rows; k++) _mm512_store_ps(dst + (size_t)(k0 + k) * NR + g, r[k]);
            }
        }
    }
}

static void pack_b_from(float *dst, const b_source *src, int j0, int nc, int p0, int kc) {
    if (!src->cols)
        pack_b(dst, src->B, src->ldb, src->tb, j0, nc, p0, kc);
    else if (src->cols_t)
        pack_cols_t(dst, src->cols, j0, nc, p0, kc);
    else
        pack_cols(dst, src->cols, j0, nc, p0, kc);
}

/* ---- micro-kernel --------------------------------------------------------------------- */

/* C[0:m, 0:n) = alpha * (pa . pb) + beta * C, or C += alpha * (pa . pb) when accumulate; pa is
 * an MR sliver and pb an NR panel, both kc deep. beta == 0 never reads C (it may hold NaN).
 * Only the first R rows of the sliver are multiplied (R >= m, a compile-time constant), and
 * wide = 0 skips the second half of the panel when n <= 16: edge tiles do no dead work. */
static inline __attribute__((always_inline)) void
micro(int kc, const float *restrict pa, const float *restrict pb, float *c, int ldc, int m, int n,
      float alpha, float beta, int accumulate, const int R, const int wide) {
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < R; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++, pa += MR, pb += NR) {
        __m512 b0 = _mm512_load_ps(pb);
        __m512 b1 = wide ? _mm512_load_ps(pb + 16) : b0;
#pragma GCC unroll 12
        for (int i = 0; i < R; i++) {
            __m512 a = _mm512_set1_ps(pa[i]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            if (wide) acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
    }
    __mmask16 m0 = kc_lanes(n), m1 = kc_lanes(n - 16);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < R; i++) {
        if (i >= m) break;
        float *row = c + (size_t)i * ldc;
        for (int h = 0; h < 1 + wide; h++) {
            __mmask16 mk = h ? m1 : m0;
            __m512 v = _mm512_mul_ps(va, acc[i][h]);
            if (accumulate)
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, row + 16 * h));
            else if (beta != 0.0f)
                v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, row + 16 * h), v);
            _mm512_mask_storeu_ps(row + 16 * h, mk, v);
        }
    }
}

typedef void (*micro_fn)(int kc, const float *pa, const float *pb, float *c, int ldc, int m, int n,
                         float alpha, float beta, int accumulate);

#define MICRO(R, WIDE)                                                                              \
    static void micro_##R##_##WIDE(int kc, const float *pa, const float *pb, float *c, int ldc,    \
                                   int m, int n, float alpha, float beta, int accumulate) {        \
        micro(kc, pa, pb, c, ldc, m, n, alpha, beta, accumulate, R, WIDE);                          \
    }
MICRO(12, 1)
MICRO(8, 1)
MICRO(4, 1)
MICRO(12, 0)
MICRO(8, 0)
MICRO(4, 0)

/* the kernel for an m x n tile: [wide][rows / 4 - 1] */
static const micro_fn micros[2][3] = {{micro_4_0, micro_8_0, micro_12_0},
                                      {micro_4_1, micro_8_1, micro_12_1}};

/* ---- driver --------------------------------------------------------------------------- */

/* slivers the tile plan cuts mc rows into */
static int slivers(int mc) {
    int n = 0;
    for (int ir = 0; ir < mc; ir += tile_rows(mc - ir)) n++;
    return n;
}

/* A is packed here unless pre (kc_sgemm_pack_a's layout) holds it already */
static void gemm(int ta, int M, int N, int K, float alpha, const float *A, int lda, const float *pre,
                 const b_source *src, float beta, float *C, int ldc) {
    pack_bufs *pk = thread_pack();
    for (int jc = 0; jc < N; jc += NC) {
        int nc = min_int(NC, N - jc);
        size_t pre_off = 0;
        for (int pc = 0; pc < K; pc += KC) {
            int kc = min_int(KC, K - pc);
            pack_b_from(pk->b, src, jc, nc, pc, kc);
            for (int ic = 0; ic < M; ic += MC) {
                int mc = min_int(MC, M - ic);
                const float *pa_block = pk->a;
                if (pre) {
                    pa_block = pre + pre_off;
                    pre_off += (size_t)slivers(mc) * MR * kc;
                } else {
                    pack_a(pk->a, A, lda, ta, ic, mc, pc, kc);
                }
                for (int jr = 0; jr < nc; jr += NR) {
                    int n = min_int(NR, nc - jr);
                    const float *pb = pk->b + (size_t)jr * kc;
                    const float *pa = pa_block;
                    for (int ir = 0, m; ir < mc; ir += m, pa += (size_t)MR * kc) {
                        float *c = C + (size_t)(ic + ir) * ldc + jc + jr;
                        m = tile_rows(mc - ir);
                        micros[n > 16][(m + 3) / 4 - 1](kc, pa, pb, c, ldc, m, n, alpha, beta,
                                                        pc > 0);
                    }
                }
            }
        }
    }
}

size_t kc_sgemm_avx512_packed_a_floats(int M, int K) {
    size_t n = 0;
    for (int pc = 0; pc < K; pc += KC)
        for (int ic = 0; ic < M; ic += MC)
            n += (size_t)slivers(min_int(MC, M - ic)) * MR * min_int(KC, K - pc);
    return n;
}

void kc_sgemm_avx512_pack_a(float *dst, int ta, int M, int K, const float *A, int lda) {
    for (int pc = 0; pc < K; pc += KC)
        for (int ic = 0; ic < M; ic += MC) {
            int kc = min_int(KC, K - pc), mc = min_int(MC, M - ic);
            pack_a(dst, A, lda, ta, ic, mc, pc, kc);
            dst += (size_t)slivers(mc) * MR * kc;
        }
}

void kc_sgemm_avx512_packed(int M, int N, int K, const float *packed_a, const float *B, int ldb,
                            int tb, float beta, float *C, int ldc) {
    b_source src = {.B = B, .ldb = ldb, .tb = tb};
    gemm(0, M, N, K, 1.0f, NULL, 0, packed_a, &src, beta, C, ldc);
}

void kc_sgemm_avx512(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
    b_source src = {.B = B, .ldb = ldb, .tb = tb};
    gemm(ta, M, N, K, alpha, A, lda, NULL, &src, beta, C, ldc);
}

void kc_sgemm_cols_avx512(int transposed, int M, const float *A, int lda, const kc_cols *cols,
                          float beta, float *C, int ldc) {
    int CKK = cols->C * cols->K * cols->K, OHW = cols->OH * cols->OW;
    b_source src = {.cols = cols, .cols_t = transposed};
    if (transposed)
        gemm(0, M, CKK, OHW, 1.0f, A, lda, NULL, &src, beta, C, ldc);
    else
        gemm(0, M, OHW, CKK, 1.0f, A, lda, NULL, &src, beta, C, ldc);
}

#endif /* __AVX512F__ */
