/* conv3x3_winograd.c: 3x3 convolutions with padding 1 (stride 1) by Winograd's minimal
 * filtering F(4x4, 3x3) (Lavin and Gray, 2016).
 *
 * The output is cut into 4x4 tiles, each computed from a 6x6 input tile d and the 3x3
 * filter g as  y = A^T [ (G g G^T) . (B^T d B) ] A  with '.' elementwise over the 36
 * positions of a 6x6 transformed tile. Summed over input channels, the elementwise product
 * becomes 36 independent GEMMs, one per position xi:  M_xi[OC, tiles] = U_xi[OC, C] .
 * V_xi[C, tiles]: 36 multiply-adds per 16 outputs and channel pair where the direct form
 * needs 9 * 16 = 144, 4x fewer, the transforms costing only additions and a few scalings.
 *
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 *
 * Backward: dx is the convolution of dout with the filter turned 180 degrees and its two
 * channel axes swapped (the same forward routine); dw comes from dM_xi = A dY A^T (per output
 * tile), dU_xi[OC, C] = sum over tiles of dM_xi . V_xi^T, and dg = G^T dU G.
 *
 * Images are staged into "planes": each image row split by column modulo 4, so that the six
 * columns of a tile, 4tx .. 4tx+5, are P0[tx], P1[tx], P2[tx], P3[tx], P0[tx+1], P1[tx+1],
 * and the transforms run over 16 consecutive tiles at a time. Work goes in chunks of whole
 * tile rows (about CHUNK_TILES tiles, across images where images are small) so that a
 * chunk's transformed tiles stay in L2 for their GEMMs. Threads own whole images.
 *
 * The 1-D transforms are macros over any type with + - and scalar *: float, and __m512
 * (GCC's vector extensions). */
/* The transforms are short chains of a*x + y; ISO C mode would keep each product and sum
 * apart (-ffp-contract=off), here they may fuse. */
#pragma GCC optimize("fp-contract=fast")

#include <string.h>

#include "cpu.h" /* with <immintrin.h> where the target has AVX-512 */
#include "kernels.h"

#define CHUNK_TILES 32
#define NP          36 /* positions of a transformed tile */
#define MAX_SLOTS   16 /* as conv2d.c: the scratch size must not depend on the thread count */
#define GRAIN       262144.0

/* o[0..5] = B^T d[0..5] */
#define BT6(o, d)                                                                               \
    do {                                                                                        \
        (o)[0] = 4.0f * (d)[0] - 5.0f * (d)[2] + (d)[4];                                        \
        (o)[1] = ((d)[3] + (d)[4]) - 4.0f * ((d)[1] + (d)[2]);                                  \
        (o)[2] = ((d)[4] - (d)[3]) + 4.0f * ((d)[1] - (d)[2]);                                  \
        (o)[3] = ((d)[4] - (d)[2]) + 2.0f * ((d)[3] - (d)[1]);                                  \
        (o)[4] = ((d)[4] - (d)[2]) - 2.0f * ((d)[3] - (d)[1]);                                  \
        (o)[5] = 4.0f * (d)[1] - 5.0f * (d)[3] + (d)[5];                                        \
    } while (0)
/* y[0..3] = A^T m[0..5] */
#define AT6(y, m)                                                                               \
    do {                                                                                        \
        (y)[0] = (m)[0] + (m)[1] + (m)[2] + (m)[3] + (m)[4];                                    \
        (y)[1] = ((m)[1] - (m)[2]) + 2.0f * ((m)[3] - (m)[4]);                                  \
        (y)[2] = ((m)[1] + (m)[2]) + 4.0f * ((m)[3] + (m)[4]);                                  \
        (y)[3] = ((m)[1] - (m)[2]) + 8.0f * ((m)[3] - (m)[4]) + (m)[5];                         \
    } while (0)
/* r[0..5] = A y[0..3] (the adjoint of AT6) */
#define A4(r, y)                                                                                \
    do {                                                                                        \
        (r)[0] = (y)[0];                                                                        \
        (r)[1] = (y)[0] + (y)[1] + (y)[2] + (y)[3];                                             \
        (r)[2] = (y)[0] - (y)[1] + (y)[2] - (y)[3];                                             \
        (r)[3] = (y)[0] + 2.0f * (y)[1] + 4.0f * (y)[2] + 8.0f * (y)[3];                        \
        (r)[4] = (y)[0] - 2.0f * (y)[1] + 4.0f * (y)[2] - 8.0f * (y)[3];                        \
        (r)[5] = (y)[3];                                                                        \
    } while (0)
/* u[0..5] = G g[0..2] */
#define G3(u, g)                                                                                \
    do {                                                                                        \
        (u)[0] = (g)[0] * (1.0f / 4);                                                           \
        (u)[1] = ((g)[0] + (g)[1] + (g)[2]) * (-1.0f / 6);                                      \
        (u)[2] = ((g)[0] - (g)[1] + (g)[2]) * (-1.0f / 6);                                      \
        (u)[3] = (g)[0] * (1.0f / 24) + (g)[1] * (1.0f / 12) + (g)[2] * (1.0f / 6);             \
        (u)[4] = (g)[0] * (1.0f / 24) - (g)[1] * (1.0f / 12) + (g)[2] * (1.0f / 6);             \
        (u)[5] = (g)[2];                                                                        \
    } while (0)
/* g[0..2] = G^T u[0..5] (the adjoint of G3) */
#define GT6(g, u)                                                                               \
    do {                                                                                        \
        (g)[0] = (u)[0] * (1.0f / 4) - ((u)[1] + (u)[2]) * (1.0f / 6) +                         \
                 ((u)[3] + (u)[4]) * (1.0f / 24);                                               \
        (g)[1] = ((u)[2] - (u)[1]) * (1.0f / 6) + ((u)[3] - (u)[4]) * (1.0f / 12);              \
        (g)[2] = ((u)[3] + (u)[4] - (u)[1] - (u)[2]) * (1.0f / 6) + (u)[5];                     \
    } while (0)

typedef struct {
    int B, C, H, W, OC;
    int TH, TW;     /* tiles per column and row */
    int PR, PC;     /* plane rows (input padded by 1: 4*TH + 2) and columns (TW + 1) */
    int rows;       /* tile rows per chunk */
    int imgs;       /* images staged together (a group) */
    int cmax;       /* max(C, OC): channels on either side (dx swaps them) */
    size_t packed;  /* floats of one packed U_xi, OC x C or C x OC (kc_packed_a_floats) */
} wshape;

static wshape wshape_of(int B, int C, int H, int W, int OC) {
    wshape s = {.B = B, .C = C, .H = H, .W = W, .OC = OC};
    s.TH = (H + 3) / 4;
    s.TW = (W + 3) / 4;
    s.PR = 4 * s.TH + 2;
    s.PC = s.TW + 1;
    s.rows = CHUNK_TILES / s.TW > 0 ? CHUNK_TILES / s.TW : 1;
    s.imgs = CHUNK_TILES / (s.TH * s.TW) > 0 ? CHUNK_TILES / (s.TH * s.TW) : 1;
    s.cmax = C > OC ? C : OC;
    size_t a = kc_packed_a_floats(OC, C), b = kc_packed_a_floats(C, OC);
    s.packed = kc_round16(a > b ? a : b);
    return s;
}

static int slots_for(int B) { return B < MAX_SLOTS ? B : MAX_SLOTS; }
static size_t chunk_tiles(const wshape *s) { return (size_t)s->rows * s->TW; }

/* ---- scratch -------------------------------------------------------------------------- */

typedef struct {
    float *planes; /* [imgs][cmax][4][PR][PC]: the columns of each row by column mod 4 */
    float *planes2; /* the same for dout, where the weight gradient needs both */
    float *acc;     /* [imgs][cmax][H][W] a group's output, before it is added to dx */
    float *V;      /* [NP][cmax][tiles] transformed input tiles */
    float *M;      /* [NP][cmax][tiles] their products, or dM in the weight gradient */
    float *dU;     /* [NP][OC][C] weight-gradient partial, transformed */
    float *db;     /* [OC] */
} wslot;

static size_t planes_floats(const wshape *s) {
    return kc_round16((size_t)s->imgs * s->cmax * 4 * s->PR * s->PC);
}
static size_t tiles_floats(const wshape *s) { return kc_round16(NP * (size_t)s->cmax * chunk_tiles(s)); }
static size_t dU_floats(const wshape *s) { return kc_round16(NP * (size_t)s->OC * s->C); }
static size_t acc_floats(const wshape *s) {
    return kc_round16((size_t)s->imgs * s->cmax * s->H * s->W);
}
static size_t slot_floats(const wshape *s) {
    return 2 * planes_floats(s) + acc_floats(s) + 2 * tiles_floats(s) + dU_floats(s) +
           kc_round16((size_t)s->OC);
}
/* the transformed filter, shared by the threads: [NP][OC][C], or [NP][C][OC] for dx */
static size_t U_floats(const wshape *s) { return kc_round16(NP * (size_t)s->OC * s->C); }
static size_t flip_floats(const wshape *s) { return kc_round16((size_t)s->OC * s->C * 9); }
/* U_xi packed for the GEMMs once per call (kc_pack_a) */
static size_t packed_floats(const wshape *s) { return NP * s->packed; }

static wslot slot_at(float *scratch, const wshape *s, int i) {
    wslot sl;
    sl.planes = scratch + U_floats(s) + flip_floats(s) + packed_floats(s) +
                (size_t)i * slot_floats(s);
    sl.planes2 = sl.planes + planes_floats(s);
    sl.acc = sl.planes2 + planes_floats(s);
    sl.V = sl.acc + acc_floats(s);
    sl.M = sl.V + tiles_floats(s);
    sl.dU = sl.M + tiles_floats(s);
    sl.db = sl.dU + dU_floats(s);
    return sl;
}

size_t winograd3x3_scratch_floats(int B, int C, int H, int W, int OC) {
    if (B <= 0) return 0;
    wshape s = wshape_of(B, C, H, W, OC);
    return U_floats(&s) + flip_floats(&s) + packed_floats(&s) +
           (size_t)slots_for(B) * slot_floats(&s);
}

/* ---- transforms ----------------------------------------------------------------------- */

/* U[xi][o][i] = (G g G^T)[xi] for filters g = w[o][i][3][3], o in [o0, o1) of O, i of I.
 * A run of up to 64 filters is transformed into a local block first, then written out one
 * position at a time: writing each filter's 36 values straight to U would touch 36 lines
 * 4*O*I bytes apart per filter. */
static void filter_transform(float *U, const float *w, int O, int I, int o0, int o1) {
    size_t plane = (size_t)O * I;
    float blk[NP][64];
    for (int o = o0; o < o1; o++)
        for (int i0 = 0; i0 < I; i0 += 64) {
            int n = I - i0 < 64 ? I - i0 : 64;
            for (int k = 0; k < n; k++) {
                const float *g = w + ((size_t)o * I + i0 + k) * 9;
                float t[6][3], u[6];
                for (int j = 0; j < 3; j++) { /* columns: t = G g */
                    float col[3] = {g[j], g[3 + j], g[6 + j]}, out[6];
                    G3(out, col);
                    for (int r = 0; r < 6; r++) t[r][j] = out[r];
                }
                for (int r = 0; r < 6; r++) { /* rows: u = t G^T */
                    G3(u, t[r]);
                    for (int v = 0; v < 6; v++) blk[6 * r + v][k] = u[v];
                }
            }
            for (int xi = 0; xi < NP; xi++)
                memcpy(U + xi * plane + (size_t)o * I + i0, blk[xi], (size_t)n * sizeof(float));
        }
}

/* wflip[i][o][ky][kx] = w[o][i][2-ky][2-kx] for i in [i0, i1): the filter of dx */
static void flip_filter(float *wflip, const float *w, int O, int I, int i0, int i1) {
    for (int i = i0; i < i1; i++)
        for (int o = 0; o < O; o++)
            for (int k = 0; k < 9; k++)
                wflip[((size_t)i * O + o) * 9 + k] = w[((size_t)o * I + i) * 9 + 8 - k];
}

#ifdef __AVX512F__
/* lane 0 = prev's lane 15, lanes 1-15 = v's lanes 0-14: a row held in consecutive vectors,
 * shifted right by one float */
static inline __m512 shift_in_last(__m512 v, __m512 prev) {
    return _mm512_castsi512_ps(
        _mm512_alignr_epi32(_mm512_castps_si512(v), _mm512_castps_si512(prev), 15));
}
#endif

/* Planes of image x[C][H][W] with a zero border of 1: P_f[c][r][k] = x[c][r-1][4k+f-1]
 * for phases f = 0..3, zero outside the image, for r < PR and k < PC. Each row is split by
 * phase from four vectors of its padded columns: loaded straight into registers where the
 * padded row fits in one block of them (images up to 60 wide), else laid out with its zero border in tmp
 * first (whose tail stays zero); copying every row through tmp measured 6% slower overall
 * at 28 x 28 (the vector loads wait for the copy's stores). */
static void stage_planes(float *planes, const float *x, int C, int H, int W,
                         const wshape *s) {
    size_t ph = (size_t)s->PR * s->PC;
    int PC = s->PC, blocks = (PC + 15) / 16;
    float tmp[64 * blocks] __attribute__((aligned(64)));
    memset(tmp, 0, sizeof tmp);
    for (int c = 0; c < C; c++) {
        float *P = planes + (size_t)c * 4 * ph;
        for (int r = 0; r < s->PR; r++) {
            int y = r - 1;
            if (y < 0 || y >= H) {
                for (int f = 0; f < 4; f++)
                    memset(P + f * ph + (size_t)r * PC, 0, (size_t)PC * sizeof(float));
                continue;
            }
            /* Rows a kilobyte ahead asked for now: the activations come from memory (a batch's
             * is several MB), and without this the loads below wait on each row in turn. */
            const float *xrow = x + ((size_t)c * H + y) * W;
            __builtin_prefetch(xrow + 256);
            __builtin_prefetch(xrow + 256 + 16);
#ifdef __AVX512F__
            for (int b = 0; b < blocks; b++) {
                __m512 t0, t1, t2, t3;
                if (blocks == 1) {
                    /* the row straight into registers (loads past its end masked off, none
                     * issued wholly past it), shifted right by one lane across the four */
                    __m512 x4[4];
                    for (int q = 0; q < 4; q++)
                        x4[q] = 16 * q < W
                                    ? _mm512_maskz_loadu_ps(kc_lanes(W - 16 * q), xrow + 16 * q)
                                    : _mm512_setzero_ps();
                    t0 = shift_in_last(x4[0], _mm512_setzero_ps());
                    t1 = shift_in_last(x4[1], x4[0]);
                    t2 = shift_in_last(x4[2], x4[1]);
                    t3 = shift_in_last(x4[3], x4[2]);
                } else {
                    if (b == 0) memcpy(tmp + 1, xrow, (size_t)W * sizeof(float));
                    const float *t = tmp + 64 * b;
                    t0 = _mm512_load_ps(t), t1 = _mm512_load_ps(t + 16);
                    t2 = _mm512_load_ps(t + 32), t3 = _mm512_load_ps(t + 48);
                }
                int left = PC - 16 * b;
                __mmask16 keep = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
                for (int f = 0; f < 4; f++) {
                    /* lanes 0-7 from t0:t1 (floats 4k+f < 32), 8-15 from t2:t3 */
                    __m512i idx = _mm512_set_epi32(28 + f, 24 + f, 20 + f, 16 + f, 12 + f, 8 + f,
                                                   4 + f, f, 28 + f, 24 + f, 20 + f, 16 + f,
                                                   12 + f, 8 + f, 4 + f, f);
                    __m512 v = _mm512_permutex2var_ps(t0, idx, t1);
                    v = _mm512_mask_blend_ps(0xFF00, v, _mm512_permutex2var_ps(t2, idx, t3));
                    _mm512_mask_storeu_ps(P + f * ph + (size_t)r * PC + 16 * b, keep, v);
                }
            }
#else
            memcpy(tmp + 1, xrow, (size_t)W * sizeof(float));
            for (int f = 0; f < 4; f++) {
                float *restrict p = P + f * ph + (size_t)r * PC;
                for (int k = 0; k < PC; k++) p[k] = tmp[4 * k + f];
            }
#endif
        }
    }
}

#ifndef __AVX512F__ /* the scalar transforms; AVX-512 builds use the *16 versions below */
/* the 6 x 6 input tile (ty, tx) of a staged image's channel planes P (pad 1) */
static void load_tile(float d[6][6], const float *P, int ty, int tx, const wshape *s) {
    size_t ph = (size_t)s->PR * s->PC;
    for (int r = 0; r < 6; r++) {
        const float *row = P + (size_t)(4 * ty + r) * s->PC + tx;
        for (int j = 0; j < 6; j++) d[r][j] = row[(j % 4) * ph + j / 4];
    }
}

/* V[xi][c][j0 + tx] = (B^T d B)[xi] for the tiles of tile row ty of a staged image (C
 * channels), j0 the chunk column of its first tile, nt the chunk's tile count */
static void input_transform(float *restrict V, const float *restrict planes, int C, int ty,
                            size_t j0, size_t nt, const wshape *s) {
    size_t xs = (size_t)C * nt;
    for (int c = 0; c < C; c++) {
        const float *P = planes + (size_t)c * 4 * s->PR * s->PC;
        for (int tx = 0; tx < s->TW; tx++) {
            float d[6][6], t[6][6], col[6], out[6];
            load_tile(d, P, ty, tx, s);
            for (int r = 0; r < 6; r++) BT6(t[r], d[r]); /* rows: d B */
            for (int v = 0; v < 6; v++) {                 /* columns: B^T (d B) */
                for (int r = 0; r < 6; r++) col[r] = t[r][v];
                BT6(out, col);
                for (int q = 0; q < 6; q++) V[(6 * q + v) * xs + (size_t)c * nt + j0 + tx] = out[q];
            }
        }
    }
}

/* dM[xi][c][j0 + tx] = (A dY A^T)[xi] for the 4x4 output-gradient tiles of tile row ty of
 * a staged dout image with C channels (staged with padding 1, as for dx) */
static void grad_transform(float *restrict dM, const float *restrict planes, int C, int ty,
                           size_t j0, size_t nt, const wshape *s) {
    size_t xs = (size_t)C * nt, ph = (size_t)s->PR * s->PC;
    for (int c = 0; c < C; c++) {
        const float *P = planes + (size_t)c * 4 * ph;
        for (int tx = 0; tx < s->TW; tx++) {
            float y[4][4], t[4][6], col[4], out[6];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) /* column 4tx+j+1 of the padded row 4ty+i+1 */
                    y[i][j] = P[((j + 1) % 4) * ph + (size_t)(4 * ty + i + 1) * s->PC + tx + (j + 1) / 4];
            for (int i = 0; i < 4; i++) A4(t[i], y[i]); /* rows: dY A^T */
            for (int v = 0; v < 6; v++) {                /* columns: A (dY A^T) */
                for (int i = 0; i < 4; i++) col[i] = t[i][v];
                A4(out, col);
                for (int q = 0; q < 6; q++) dM[(6 * q + v) * xs + (size_t)c * nt + j0 + tx] = out[q];
            }
        }
    }
}

/* out[c][4ty+i][4tx+j] = (A^T M A)[i][j] (+ bias[c]) for the tiles of tile row ty, cropped to
 * H x W; out is one image [C][H][W] */
static void output_transform(float *restrict out, const float *restrict M, const float *bias,
                             int C, int ty, size_t j0, size_t nt, const wshape *s) {
    size_t xs = (size_t)C * nt;
    for (int c = 0; c < C; c++)
        for (int tx = 0; tx < s->TW; tx++) {
            float m[6][6], p[6][4], col[6], y[4];
            for (int xi = 0; xi < NP; xi++) m[xi / 6][xi % 6] = M[xi * xs + (size_t)c * nt + j0 + tx];
            for (int q = 0; q < 6; q++) AT6(p[q], m[q]); /* rows: M A */
            for (int j = 0; j < 4; j++) {                /* columns: A^T (M A) */
                for (int q = 0; q < 6; q++) col[q] = p[q][j];
                AT6(y, col);
                for (int i = 0; i < 4; i++) {
                    int oy = 4 * ty + i, ox = 4 * tx + j;
                    if (oy < s->H && ox < s->W)
                        out[((size_t)c * s->H + oy) * s->W + ox] = y[i] + (bias ? bias[c] : 0.0f);
                }
            }
        }
}
#endif

/* dw[o][i][3][3] += (G^T dU G) for [o0, o1); dU = [NP][O][I] */
static void filter_grad_transform(float *dw, const float *dU, int O, int I, int o0, int o1) {
    size_t plane = (size_t)O * I;
    for (int o = o0; o < o1; o++)
        for (int i = 0; i < I; i++) {
            float u[6][6], t[3][6], col[6], g3[3];
            for (int xi = 0; xi < NP; xi++) u[xi / 6][xi % 6] = dU[xi * plane + (size_t)o * I + i];
            for (int v = 0; v < 6; v++) { /* columns: G^T dU */
                for (int q = 0; q < 6; q++) col[q] = u[q][v];
                GT6(g3, col);
                for (int r = 0; r < 3; r++) t[r][v] = g3[r];
            }
            float *g = dw + ((size_t)o * I + i) * 9;
            for (int r = 0; r < 3; r++) { /* rows: (G^T dU) G */
                GT6(g3, t[r]);
                for (int j = 0; j < 3; j++) g[3 * r + j] += g3[j];
            }
        }
}

/* A chunk: tile rows [q0, q1) of a group of images (see convolve_images) */
typedef struct {
    int q0, q1;
} chunk;

static size_t plane_stride(const wshape *s) { return (size_t)s->cmax * 4 * s->PR * s->PC; }

/* ---- the transforms vectorized over 16 consecutive tiles of a chunk --------------------- */
#ifdef __AVX512F__
/* Where 16 consecutive chunk tiles lie in the planes: lanes in mask[i] belong to one tile
 * row, and lane l of them reads (row base + off[i])[l]; the row base is the tile's plane row
 * 4ty, column tx = 0, in image q / TH of the group. */
typedef struct {
    int n;
    __mmask16 mask[16];
    ptrdiff_t off[16];
    int ty[16], tx0[16], img[16], l0[16], run[16]; /* for writing the output */
} tile_segs;

static void tile_segments(tile_segs *sg, const chunk *k, int j0, int nt, const wshape *s) {
    sg->n = 0;
    int n = nt - j0 < 16 ? nt - j0 : 16;
    for (int l = 0; l < n;) {
        int j = j0 + l, q = k->q0 + j / s->TW, tx = j % s->TW;
        int run = s->TW - tx < n - l ? s->TW - tx : n - l, i = sg->n++;
        sg->mask[i] = (__mmask16)(((1u << (l + run)) - 1) & ~((1u << l) - 1));
        sg->img[i] = q / s->TH;
        sg->ty[i] = q % s->TH;
        sg->tx0[i] = tx;
        sg->l0[i] = l;
        sg->run[i] = run;
        sg->off[i] = (ptrdiff_t)sg->img[i] * (ptrdiff_t)plane_stride(s) +
                     (ptrdiff_t)4 * sg->ty[i] * s->PC + tx - l;
        l += run;
    }
}

/* lanes of the segments from base + off (a segment's address may lie before base: only its
 * own lanes are read, and masked loads do not fault). Zero-masked loads OR-ed together: no
 * load waits for another, as merging loads into one register would. nseg is sg->n, passed
 * as a constant where the callers below specialize on it, so the loop unrolls with its masks
 * held in registers. */
static inline __attribute__((always_inline)) __m512 seg_load(const float *base, const tile_segs *sg,
                                                             ptrdiff_t delta, const int nseg) {
    __m512 v = _mm512_setzero_ps();
    for (int i = 0; i < nseg; i++)
        v = _mm512_or_ps(v, _mm512_maskz_loadu_ps(
                                sg->mask[i], (const float *)((uintptr_t)base +
                                                             (sg->off[i] + delta) *
                                                                 (ptrdiff_t)sizeof(float))));
    return v;
}

/* V[xi][c][j0 .. j0+16) for C channels: B^T d B */
static inline __attribute__((always_inline)) void
input_transform16_n(float *V, const float *planes, int C, const tile_segs *sg, int j0, int nt,
                    const wshape *s, const int nseg) {
    __mmask16 keep = kc_lanes(nt - j0);
    size_t xs = (size_t)C * nt, PC = (size_t)s->PC, ph = (size_t)s->PR * s->PC;
    for (int c = 0; c < C; c++) {
        const float *P = planes + (size_t)c * 4 * ph;
        __m512 t[6][6], d[6], col[6], out[6];
        for (int r = 0; r < 6; r++) { /* rows: d B */
            for (int j = 0; j < 6; j++)
                d[j] = seg_load(P + (j % 4) * ph, sg, (ptrdiff_t)(r * PC + j / 4), nseg);
            BT6(t[r], d);
        }
        float *v = V + (size_t)c * nt + j0;
        for (int q = 0; q < 6; q++) { /* columns: B^T (d B) */
            for (int r = 0; r < 6; r++) col[r] = t[r][q];
            BT6(out, col);
            for (int p = 0; p < 6; p++) _mm512_mask_storeu_ps(v + (6 * p + q) * xs, keep, out[p]);
        }
    }
}

/* dM[xi][c][j0 .. j0+16) for C channels: A dY A^T, from dout staged with padding 1 */
static inline __attribute__((always_inline)) void
grad_transform16_n(float *dM, const float *planes, int C, const tile_segs *sg, int j0, int nt,
                   const wshape *s, const int nseg) {
    __mmask16 keep = kc_lanes(nt - j0);
    size_t xs = (size_t)C * nt, PC = (size_t)s->PC, ph = (size_t)s->PR * s->PC;
    for (int c = 0; c < C; c++) {
        const float *P = planes + (size_t)c * 4 * ph;
        __m512 t[4][6], y[4], col[4], out[6];
        for (int i = 0; i < 4; i++) { /* rows: dY A^T */
            for (int j = 0; j < 4; j++) /* column 4tx+j+1 of the padded row 4ty+i+1 */
                y[j] = seg_load(P + ((j + 1) % 4) * ph, sg,
                                (ptrdiff_t)((i + 1) * PC + (j + 1) / 4), nseg);
            A4(t[i], y);
        }
        float *m = dM + (size_t)c * nt + j0;
        for (int q = 0; q < 6; q++) { /* columns: A (dY A^T) */
            for (int i = 0; i < 4; i++) col[i] = t[i][q];
            A4(out, col);
            for (int p = 0; p < 6; p++) _mm512_mask_storeu_ps(m + (6 * p + q) * xs, keep, out[p]);
        }
    }
}

/* the two transforms with the segment count a constant where it is 1 to 4 (7 x 7 images
 * have 8 segments of 2 tiles; specializing on 8 measured no faster) */
static void input_transform16(float *V, const float *planes, int C, const tile_segs *sg, int j0,
                              int nt, const wshape *s) {
    KC_WITH_NSEG(sg->n, input_transform16_n(V, planes, C, sg, j0, nt, s, NSEG))
}
static void grad_transform16(float *dM, const float *planes, int C, const tile_segs *sg, int j0,
                             int nt, const wshape *s) {
    KC_WITH_NSEG(sg->n, grad_transform16_n(dM, planes, C, sg, j0, nt, s, NSEG))
}

/* 16 floats each of a and b interleaved: a0 b0 a1 b1 ..., as lo (0-7) and hi (8-15) */
static inline void interleave2(__m512 a, __m512 b, __m512 *lo, __m512 *hi) {
    const __m512i il = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i ih = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    *lo = _mm512_permutex2var_ps(a, il, b);
    *hi = _mm512_permutex2var_ps(a, ih, b);
}

/* out = A^T M A (+ bias) for chunk tiles j0 .. j0+16 of group g0, O channels */
static void output_transform16(float *out, const float *M, const float *bias, int O,
                               const tile_segs *sg, int j0, int nt, int g0, const wshape *s) {
    __mmask16 keep = kc_lanes(nt - j0);
    size_t xs = (size_t)O * nt;
    int H = s->H, W = s->W;
    float buf[4][64] __attribute__((aligned(64))); /* output row i of the 16 tiles, interleaved */
    for (int c = 0; c < O; c++) {
        const float *m = M + (size_t)c * nt + j0;
        __m512 p[6][4], row[6], col[6], y[4][4];
        for (int q = 0; q < 6; q++) { /* rows: M A */
            for (int v = 0; v < 6; v++) row[v] = _mm512_maskz_loadu_ps(keep, m + (6 * q + v) * xs);
            AT6(p[q], row);
        }
        __m512 b = _mm512_set1_ps(bias ? bias[c] : 0.0f);
        for (int j = 0; j < 4; j++) { /* columns: A^T (M A) */
            __m512 yy[4];
            for (int q = 0; q < 6; q++) col[q] = p[q][j];
            AT6(yy, col);
            for (int i = 0; i < 4; i++) y[i][j] = yy[i] + b;
        }
        for (int i = 0; i < 4; i++) {
            __m512 a_lo, a_hi, b_lo, b_hi, r0, r1, r2, r3;
            interleave2(y[i][0], y[i][2], &a_lo, &a_hi);
            interleave2(y[i][1], y[i][3], &b_lo, &b_hi);
            interleave2(a_lo, b_lo, &r0, &r1);
            interleave2(a_hi, b_hi, &r2, &r3);
            _mm512_store_ps(buf[i], r0);
            _mm512_store_ps(buf[i] + 16, r1);
            _mm512_store_ps(buf[i] + 32, r2);
            _mm512_store_ps(buf[i] + 48, r3);
        }
        for (int g = 0; g < sg->n; g++) {
            float *img = out + ((size_t)(g0 + sg->img[g]) * O + c) * H * W;
            int x0 = 4 * sg->tx0[g], w = 4 * sg->run[g];
            if (x0 + w > W) w = W - x0;
            /* floats [f0, f0 + w) of buf[i] go to row[0, w): per quarter of buf, one masked
             * store at row - f0 + 16h (only its own lanes are touched) */
            int f0 = 4 * sg->l0[g];
            for (int i = 0; i < 4; i++) {
                int oy = 4 * sg->ty[g] + i;
                if (oy >= H) break;
                uintptr_t rowp = (uintptr_t)(img + (size_t)oy * W + x0);
                for (int h = 0; h < 4; h++) {
                    int a = f0 > 16 * h ? f0 : 16 * h, z = f0 + w < 16 * h + 16 ? f0 + w : 16 * h + 16;
                    if (a >= z) continue;
                    __mmask16 mk = (__mmask16)(kc_lanes(z - 16 * h) & ~kc_lanes(a - 16 * h));
                    float *dst = (float *)(rowp + (uintptr_t)((ptrdiff_t)(16 * h - f0) *
                                                              (ptrdiff_t)sizeof(float)));
                    _mm512_mask_storeu_ps(dst, mk, _mm512_load_ps(buf[i] + 16 * h));
                }
            }
        }
    }
}
#endif /* __AVX512F__ */

/* ---- groups and chunks ---------------------------------------------------------------- */

/* Images go in groups of s->imgs, staged once each; a group's tile rows (image g0 row 0,
 * ..., its last image's row TH-1) go in chunks of s->rows, the tiles of a chunk in order. */

/* images [g0, g1) of src (each C x H x W) staged into planes */
static void stage_group(float *planes, const float *src, int C, int g0, int g1,
                        const wshape *s) {
    for (int img = g0; img < g1; img++)
        stage_planes(planes + (size_t)(img - g0) * plane_stride(s),
                     src + (size_t)img * C * s->H * s->W, C, s->H, s->W, s);
}

#ifdef __AVX512F__
typedef void (*tiles16_fn)(float *dst, const float *planes, int C, const tile_segs *sg, int j0,
                           int nt, const wshape *s);

/* dst = the chunk's tiles through fn, 16 at a time */
static void transform_chunk(float *dst, const float *planes, int C, const chunk *k, tiles16_fn fn,
                            const wshape *s) {
    int nt = (k->q1 - k->q0) * s->TW;
    for (int j0 = 0; j0 < nt; j0 += 16) {
        tile_segs sg;
        tile_segments(&sg, k, j0, nt, s);
        fn(dst, planes, C, &sg, j0, nt, s);
    }
}

/* out images (OC x H x W each) from M of the chunk of group g0 */
static void emit_chunk(float *out, const float *M, const float *bias, int OC,
                       const chunk *k, int g0, const wshape *s) {
    int nt = (k->q1 - k->q0) * s->TW;
    for (int j0 = 0; j0 < nt; j0 += 16) {
        tile_segs sg;
        tile_segments(&sg, k, j0, nt, s);
        output_transform16(out, M, bias, OC, &sg, j0, nt, g0, s);
    }
}
#define INPUT_TRANSFORM input_transform16
#define GRAD_TRANSFORM  grad_transform16
#else
typedef void (*row_fn)(float *dst, const float *planes, int C, int ty, size_t j0, size_t nt,
                       const wshape *s);

/* dst = the chunk's tiles through fn, each tile row from its image's planes */
static void transform_chunk(float *dst, const float *planes, int C, const chunk *k, row_fn fn,
                            const wshape *s) {
    size_t nt = (size_t)(k->q1 - k->q0) * s->TW;
    for (int q = k->q0; q < k->q1; q++)
        fn(dst, planes + (size_t)(q / s->TH) * plane_stride(s), C, q % s->TH,
           (size_t)(q - k->q0) * s->TW, nt, s);
}

/* out images (OC x H x W each) from M of the chunk of group g0 */
static void emit_chunk(float *out, const float *M, const float *bias, int OC,
                       const chunk *k, int g0, const wshape *s) {
    size_t nt = (size_t)(k->q1 - k->q0) * s->TW;
    for (int q = k->q0; q < k->q1; q++)
        output_transform(out + (size_t)(g0 + q / s->TH) * OC * s->H * s->W, M, bias, OC,
                         q % s->TH, (size_t)(q - k->q0) * s->TW, nt, s);
}
#define INPUT_TRANSFORM input_transform
#define GRAD_TRANSFORM  grad_transform
#endif

/* Up[xi] = U_xi [O][I] packed for kc_sgemm_packed, for xi in [x0, x1) */
static void pack_filters(float *Up, const float *U, int O, int I, int x0, int x1,
                         const wshape *s) {
    for (int xi = x0; xi < x1; xi++)
        kc_pack_a(Up + xi * s->packed, 0, O, I, U + (size_t)xi * O * I, I);
}

/* out[b] = conv(in[b]) (+ bias) for b in [b0, b1): in has C channels, out O, Up = U
 * [NP][O][C] packed by pack_filters */
static void convolve_images(float *out, const float *in, const float *Up, const float *bias, int C,
                            int O, wslot *sl, int b0, int b1, const wshape *s) {
    for (int g0 = b0; g0 < b1; g0 += s->imgs) {
        int g1 = g0 + s->imgs < b1 ? g0 + s->imgs : b1, nrows = (g1 - g0) * s->TH;
        stage_group(sl->planes, in, C, g0, g1, s);
        for (int q0 = 0; q0 < nrows; q0 += s->rows) {
            chunk k = {q0, q0 + s->rows < nrows ? q0 + s->rows : nrows};
            int nt = (k.q1 - k.q0) * s->TW;
            transform_chunk(sl->V, sl->planes, C, &k, INPUT_TRANSFORM, s);
            for (int xi = 0; xi < NP; xi++)
                kc_sgemm_packed(O, nt, C, Up + xi * s->packed, sl->V + (size_t)xi * C * nt, nt,
                                0, 0.0f, sl->M + (size_t)xi * O * nt, nt);
            emit_chunk(out, sl->M, bias, O, &k, g0, s);
        }
    }
}

/* For images [b0, b1): dU += sum over their tiles of dM . V^T (when dU), and
 * dinp += conv(dout, wflip) (when dinp; Up = its transformed filter [NP][C][OC], packed).
 * dout is staged once per group, with padding 1, for both. */
static void backward_images(float *dU, float *dinp, const float *dout, const float *in,
                            const float *Up, wslot *sl, int b0, int b1, const wshape *s) {
    int C = s->C, OC = s->OC;
    size_t per = (size_t)C * s->H * s->W;
    for (int g0 = b0; g0 < b1; g0 += s->imgs) {
        int g1 = g0 + s->imgs < b1 ? g0 + s->imgs : b1, nrows = (g1 - g0) * s->TH;
        if (dU) stage_group(sl->planes, in, C, g0, g1, s);
        stage_group(sl->planes2, dout, OC, g0, g1, s);
        for (int q0 = 0; q0 < nrows; q0 += s->rows) {
            chunk k = {q0, q0 + s->rows < nrows ? q0 + s->rows : nrows};
            int nt = (k.q1 - k.q0) * s->TW;
            if (dU) {
                transform_chunk(sl->V, sl->planes, C, &k, INPUT_TRANSFORM, s);
                transform_chunk(sl->M, sl->planes2, OC, &k, GRAD_TRANSFORM, s);
                for (int xi = 0; xi < NP; xi++)
                    kc_sgemm(0, 1, OC, C, nt, 1.0f, sl->M + (size_t)xi * OC * nt, nt,
                             sl->V + (size_t)xi * C * nt, nt, 1.0f, dU + (size_t)xi * OC * C, C);
            }
            if (dinp) { /* into the group's buffer, added below: adding in place would read
                           what the previous tiles' masked stores just wrote, which stalls */
                transform_chunk(sl->V, sl->planes2, OC, &k, INPUT_TRANSFORM, s);
                for (int xi = 0; xi < NP; xi++)
                    kc_sgemm_packed(C, nt, OC, Up + xi * s->packed, sl->V + (size_t)xi * OC * nt,
                                    nt, 0, 0.0f, sl->M + (size_t)xi * C * nt, nt);
                emit_chunk(sl->acc, sl->M, NULL, C, &k, 0, s);
            }
        }
        if (dinp) {
            float *restrict dst = dinp + (size_t)g0 * per;
            const float *restrict src = sl->acc;
            size_t n = (size_t)(g1 - g0) * per;
            for (size_t i = 0; i < n; i++) dst[i] += src[i];
        }
    }
}

static int wino_threads(const wshape *s) {
    int nt = kc_threads_for((double)s->B * s->OC * s->C * s->H * s->W * 4, GRAIN);
    return nt < slots_for(s->B) ? nt : slots_for(s->B);
}

/* ---- entry points --------------------------------------------------------------------- */

void winograd3x3_forward(float *out, const float *inp, const float *w, const float *b,
                         float *scratch, int B, int C, int H, int W, int OC) {
    if (B <= 0) return;
    wshape s = wshape_of(B, C, H, W, OC);
    float *U = scratch, *Up = scratch + U_floats(&s) + flip_floats(&s);
    int nt = wino_threads(&s);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int tid = KC_TID(), nth = KC_NT(), lo, hi;
        kc_split(OC, nth, tid, &lo, &hi);
        filter_transform(U, w, OC, C, lo, hi);
        KC_OMP(omp barrier)
        kc_split(NP, nth, tid, &lo, &hi);
        pack_filters(Up, U, OC, C, lo, hi, &s);
        KC_OMP(omp barrier)
        kc_split(B, nth, tid, &lo, &hi);
        wslot sl = slot_at(scratch, &s, tid);
        convolve_images(out, inp, Up, b, C, OC, &sl, lo, hi, &s);
    }
}

void winograd3x3_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, float *scratch, int B, int C, int H, int W, int OC) {
    if (B <= 0 || (!dinp && !dw && !db)) return;
    wshape s = wshape_of(B, C, H, W, OC);
    float *U = scratch, *wflip = scratch + U_floats(&s), *Up = wflip + flip_floats(&s);
    int nt = wino_threads(&s), HW = H * W;
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int tid = KC_TID(), nth = KC_NT(), lo, hi;
        if (dinp) { /* dx = conv(dout, wflip): its filter [C][OC][3][3], transformed */
            kc_split(C, nth, tid, &lo, &hi);
            flip_filter(wflip, w, OC, C, lo, hi);
            KC_OMP(omp barrier)
            filter_transform(U, wflip, C, OC, lo, hi);
            KC_OMP(omp barrier)
            kc_split(NP, nth, tid, &lo, &hi);
            pack_filters(Up, U, C, OC, lo, hi, &s);
            KC_OMP(omp barrier)
        }
        kc_split(B, nth, tid, &lo, &hi);
        wslot sl = slot_at(scratch, &s, tid);
        if (db) {
            memset(sl.db, 0, (size_t)OC * sizeof(float));
            for (int i = lo; i < hi; i++)
                for (int oc = 0; oc < OC; oc++)
                    sl.db[oc] += kc_sum_lanes(dout + ((size_t)i * OC + oc) * HW, HW);
        }
        if (dw) memset(sl.dU, 0, dU_floats(&s) * sizeof(float));
        if (dw || dinp) backward_images(dw ? sl.dU : NULL, dinp, dout, inp, Up, &sl, lo, hi, &s);
        KC_OMP(omp barrier)
        /* The threads' dU partials summed in thread order into slot 0's (each thread a range),
         * then transformed once: results depend only on the thread count, and differ between
         * thread counts only by the order of the sums, not by the transform's rounding. */
        if (dw) {
            size_t a, z;
            wslot first = slot_at(scratch, &s, 0);
            kc_split16((size_t)NP * OC * C, nth, tid, &a, &z);
            for (int t = 1; t < nth; t++) {
                wslot o = slot_at(scratch, &s, t);
                for (size_t i = a; i < z; i++) first.dU[i] += o.dU[i];
            }
            KC_OMP(omp barrier)
            kc_split(OC, nth, tid, &lo, &hi);
            filter_grad_transform(dw, first.dU, OC, C, lo, hi);
        }
        if (db && tid == 0)
            for (int t = 0; t < nth; t++) {
                wslot o = slot_at(scratch, &s, t);
                for (int i = 0; i < OC; i++) db[i] += o.db[i];
            }
    }
}
