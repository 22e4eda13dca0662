/* conv3x3_winograd.c: 3x3 convolutions with padding 1 (stride 1) by Winograd's minimal
 * filtering F(2x2, 3x3) (Lavin and Gray, 2016).
 *
 * The output is cut into 2x2 tiles, each computed from a 4x4 input tile d and the 3x3
 * filter g as  y = A^T [ (G g G^T) . (B^T d B) ] A  with '.' elementwise over the 16
 * positions of a 4x4 transformed tile. Summed over input channels, the elementwise product
 * becomes 16 independent GEMMs, one per position xi:  M_xi[OC, tiles] = U_xi[OC, C] .
 * V_xi[C, tiles]; 16 * 4 multiply-adds per output pixel and channel pair where the direct
 * form needs 9 * 4 per 2x2 tile = 36: 2.25x fewer, the transforms costing only additions.
 *
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 *
 * Backward: dx is the convolution of dout with the filter turned 180 degrees and its two
 * channel axes swapped (the same forward routine); dw comes from dM_xi = A dY A^T (per output
 * tile), dU_xi[OC, C] = sum over tiles of dM_xi . V_xi^T, and dg = G^T dU G.
 *
 * Images are staged into "planes": each image row split into its even and odd columns, so
 * that the four columns of a tile, 2tx .. 2tx+3, are E[tx], O[tx], E[tx+1], O[tx+1], and the
 * transforms run as unit-stride loops over a row of tiles. Work goes in chunks of whole tile
 * rows (about CHUNK_TILES tiles, across images where images are small) so that a chunk's
 * transformed tiles stay in L2 for their GEMMs. Threads own whole images. */
#include <string.h>

#include "cpu.h"
#include "kernels.h"

#define CHUNK_TILES 96
#define MAX_SLOTS   16 /* as conv2d.c: the scratch size must not depend on the thread count */
#define GRAIN       262144.0

typedef struct {
    int B, C, H, W, OC;
    int TH, TW;     /* tiles per column and row */
    int PR, PC;     /* plane rows (input padded by 1: 2*TH + 2) and columns (TW + 1) */
    int rows;       /* tile rows per chunk */
    int imgs;       /* images staged together (a group) */
    int cmax;       /* max(C, OC): channels on either side (dx swaps them) */
} wshape;

static wshape wshape_of(int B, int C, int H, int W, int OC) {
    wshape s = {.B = B, .C = C, .H = H, .W = W, .OC = OC};
    s.TH = (H + 1) / 2;
    s.TW = (W + 1) / 2;
    s.PR = 2 * s.TH + 2;
    s.PC = s.TW + 1;
    s.rows = CHUNK_TILES / s.TW > 0 ? CHUNK_TILES / s.TW : 1;
    s.imgs = CHUNK_TILES / (s.TH * s.TW) > 0 ? CHUNK_TILES / (s.TH * s.TW) : 1;
    s.cmax = C > OC ? C : OC;
    return s;
}

static int slots_for(int B) { return B < MAX_SLOTS ? B : MAX_SLOTS; }
static size_t chunk_tiles(const wshape *s) { return (size_t)s->rows * s->TW; }

/* ---- scratch -------------------------------------------------------------------------- */

typedef struct {
    float *planes; /* [imgs][cmax][2][PR][PC]: even and odd columns of each row */
    float *planes2; /* the same for dout, where the weight gradient needs both */
    float *acc;     /* [imgs][cmax][H][W] a group's output, before it is added to dx */
    float *V;      /* [16][cmax][tiles] transformed input tiles */
    float *M;      /* [16][cmax][tiles] their products, or dM in the weight gradient */
    float *dU;     /* [16][OC][C] weight-gradient partial, transformed */
    float *dw;     /* [OC][C][9] weight-gradient partial */
    float *db;     /* [OC] */
} wslot;

static size_t planes_floats(const wshape *s) {
    return kc_round16((size_t)s->imgs * s->cmax * 2 * s->PR * s->PC);
}
static size_t tiles_floats(const wshape *s) { return kc_round16(16 * (size_t)s->cmax * chunk_tiles(s)); }
static size_t dU_floats(const wshape *s) { return kc_round16(16 * (size_t)s->OC * s->C); }
static size_t acc_floats(const wshape *s) {
    return kc_round16((size_t)s->imgs * s->cmax * s->H * s->W);
}
static size_t slot_floats(const wshape *s) {
    return 2 * planes_floats(s) + acc_floats(s) + 2 * tiles_floats(s) + dU_floats(s) +
           kc_round16((size_t)s->OC * s->C * 9) + kc_round16((size_t)s->OC);
}
/* the transformed filter, shared by the threads: [16][OC][C], or [16][C][OC] for dx */
static size_t U_floats(const wshape *s) { return kc_round16(16 * (size_t)s->OC * s->C); }
static size_t flip_floats(const wshape *s) { return kc_round16((size_t)s->OC * s->C * 9); }

static wslot slot_at(float *scratch, const wshape *s, int i) {
    wslot sl;
    sl.planes = scratch + U_floats(s) + flip_floats(s) + (size_t)i * slot_floats(s);
    sl.planes2 = sl.planes + planes_floats(s);
    sl.acc = sl.planes2 + planes_floats(s);
    sl.V = sl.acc + acc_floats(s);
    sl.M = sl.V + tiles_floats(s);
    sl.dU = sl.M + tiles_floats(s);
    sl.dw = sl.dU + dU_floats(s);
    sl.db = sl.dw + kc_round16((size_t)s->OC * s->C * 9);
    return sl;
}

size_t winograd3x3_scratch_floats(int B, int C, int H, int W, int OC) {
    if (B <= 0) return 0;
    wshape s = wshape_of(B, C, H, W, OC);
    return U_floats(&s) + flip_floats(&s) + (size_t)slots_for(B) * slot_floats(&s);
}

/* ---- transforms ----------------------------------------------------------------------- */

/* U[xi][o][i] = (G g G^T)[xi] for filters g = w[o][i][3][3], o in [o0, o1) of O, i of I */
static void filter_transform(float *U, const float *w, int O, int I, int o0, int o1) {
    size_t plane = (size_t)O * I;
    for (int o = o0; o < o1; o++)
        for (int i = 0; i < I; i++) {
            const float *g = w + ((size_t)o * I + i) * 9;
            float t[4][3], u[4][4];
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[j];
                t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int r = 0; r < 4; r++) {
                u[r][0] = t[r][0];
                u[r][1] = 0.5f * (t[r][0] + t[r][1] + t[r][2]);
                u[r][2] = 0.5f * (t[r][0] - t[r][1] + t[r][2]);
                u[r][3] = t[r][2];
            }
            for (int xi = 0; xi < 16; xi++) U[xi * plane + (size_t)o * I + i] = u[xi / 4][xi % 4];
        }
}

/* wflip[i][o][ky][kx] = w[o][i][2-ky][2-kx] for i in [i0, i1): the filter of dx */
static void flip_filter(float *wflip, const float *w, int O, int I, int i0, int i1) {
    for (int i = i0; i < i1; i++)
        for (int o = 0; o < O; o++)
            for (int k = 0; k < 9; k++)
                wflip[((size_t)i * O + o) * 9 + k] = w[((size_t)o * I + i) * 9 + 8 - k];
}

/* Planes of image x[C][H][W] shifted by pad (0 or 1): E[c][r][k] = x[c][r-pad][2k-pad],
 * O[c][r][k] = x[c][r-pad][2k+1-pad], zero outside the image, for r < PR and k < PC. */
static void stage_planes(float *planes, const float *x, int C, int H, int W, int pad,
                         const wshape *s) {
    int e0 = (pad + 1) / 2, e1 = (W + pad + 1) / 2, o1 = (W + pad) / 2; /* k ranges inside */
    for (int c = 0; c < C; c++) {
        float *E = planes + (size_t)c * 2 * s->PR * s->PC, *O = E + (size_t)s->PR * s->PC;
        for (int r = 0; r < s->PR; r++) {
            float *restrict e = E + (size_t)r * s->PC, *restrict o = O + (size_t)r * s->PC;
            int y = r - pad;
            memset(e, 0, (size_t)s->PC * sizeof(float));
            memset(o, 0, (size_t)s->PC * sizeof(float));
            if (y < 0 || y >= H) continue;
            const float *restrict row = x + ((size_t)c * H + y) * W;
            for (int k = e0; k < e1; k++) e[k] = row[2 * k - pad];
            for (int k = 0; k < o1; k++) o[k] = row[2 * k + 1 - pad];
        }
    }
}

#ifndef __AVX512F__ /* the scalar transforms; AVX-512 builds use the *16 versions below */
/* V[xi][c][j0 + tx] = (B^T d B)[xi] for the tiles of tile row ty of a staged image (C
 * channels), j0 the chunk column of its first tile, nt the chunk's tile count */
static void input_transform(float *restrict V, const float *restrict planes, int C, int ty,
                            size_t j0, size_t nt, const wshape *s) {
    int TW = s->TW;
    size_t xs = (size_t)C * nt; /* stride between positions xi */
    for (int c = 0; c < C; c++) {
        const float *E = planes + (size_t)c * 2 * s->PR * s->PC + (size_t)2 * ty * s->PC;
        const float *O = E + (size_t)s->PR * s->PC;
        float *v = V + (size_t)c * nt + j0;
        for (int tx = 0; tx < TW; tx++) {
            float d[4][4], x[4][4];
            for (int r = 0; r < 4; r++) {
                const float *e = E + (size_t)r * s->PC, *o = O + (size_t)r * s->PC;
                d[r][0] = e[tx];
                d[r][1] = o[tx];
                d[r][2] = e[tx + 1];
                d[r][3] = o[tx + 1];
            }
            for (int j = 0; j < 4; j++) {
                x[0][j] = d[0][j] - d[2][j];
                x[1][j] = d[1][j] + d[2][j];
                x[2][j] = d[2][j] - d[1][j];
                x[3][j] = d[1][j] - d[3][j];
            }
            for (int r = 0; r < 4; r++) {
                v[(4 * r + 0) * xs + tx] = x[r][0] - x[r][2];
                v[(4 * r + 1) * xs + tx] = x[r][1] + x[r][2];
                v[(4 * r + 2) * xs + tx] = x[r][2] - x[r][1];
                v[(4 * r + 3) * xs + tx] = x[r][1] - x[r][3];
            }
        }
    }
}

/* dM[xi][c][j0 + tx] = (A dY A^T)[xi] for the 2x2 output-gradient tiles of tile row ty of
 * a staged (unpadded) dout image with C channels */
static void grad_transform(float *restrict dM, const float *restrict planes, int C, int ty,
                           size_t j0, size_t nt, const wshape *s) {
    int TW = s->TW;
    size_t xs = (size_t)C * nt;
    for (int c = 0; c < C; c++) {
        const float *E = planes + (size_t)c * 2 * s->PR * s->PC + (size_t)2 * ty * s->PC;
        const float *O = E + (size_t)s->PR * s->PC;
        float *m = dM + (size_t)c * nt + j0;
        for (int tx = 0; tx < TW; tx++) {
            float y00 = E[tx], y01 = O[tx], y10 = E[s->PC + tx], y11 = O[s->PC + tx];
            /* rows: R = A dY (4 x 2) */
            float r[4][2] = {{y00, y01}, {y00 + y10, y01 + y11}, {y00 - y10, y01 - y11}, {-y10, -y11}};
            for (int q = 0; q < 4; q++) {
                m[(4 * q + 0) * xs + tx] = r[q][0];
                m[(4 * q + 1) * xs + tx] = r[q][0] + r[q][1];
                m[(4 * q + 2) * xs + tx] = r[q][0] - r[q][1];
                m[(4 * q + 3) * xs + tx] = -r[q][1];
            }
        }
    }
}

/* out[c][2ty+i][2tx+j] = (A^T M A)[i][j] (+ bias[c]) for the tiles
 * of tile row ty, cropped to H x W; out is one image [C][H][W] */
static void output_transform(float *restrict out, const float *restrict M, const float *bias,
                             int C, int ty, size_t j0, size_t nt, const wshape *s) {
    int TW = s->TW, H = s->H, W = s->W;
    size_t xs = (size_t)C * nt;
    float y[2][2][CHUNK_TILES > 64 ? CHUNK_TILES : 64]; /* [row][column parity][tx] */
    for (int c = 0; c < C; c++) {
        const float *m = M + (size_t)c * nt + j0;
        float b = bias ? bias[c] : 0.0f;
        for (int t0 = 0; t0 < TW; t0 += 64) {
            int n = TW - t0 < 64 ? TW - t0 : 64;
            for (int k = 0; k < n; k++) {
                int tx = t0 + k;
                float p[2][4];
                for (int v = 0; v < 4; v++) {
                    float m0 = m[(0 + v) * xs + tx], m1 = m[(4 + v) * xs + tx];
                    float m2 = m[(8 + v) * xs + tx], m3 = m[(12 + v) * xs + tx];
                    p[0][v] = m0 + m1 + m2;
                    p[1][v] = m1 - m2 - m3;
                }
                for (int i = 0; i < 2; i++) {
                    y[i][0][k] = p[i][0] + p[i][1] + p[i][2] + b;
                    y[i][1][k] = p[i][1] - p[i][2] - p[i][3] + b;
                }
            }
            for (int i = 0; i < 2; i++) {
                int oy = 2 * ty + i;
                if (oy >= H) break;
                float *row = out + ((size_t)c * H + oy) * W + 2 * t0;
                int w = W - 2 * t0 < 2 * n ? W - 2 * t0 : 2 * n;
                for (int x = 0; x < w; x++) row[x] = y[i][x & 1][x >> 1];
            }
        }
    }
}

#endif

/* dw[o][i][3][3] = (G^T dU G) for [o0, o1); dU = [16][O][I] */
static void filter_grad_transform(float *dw, const float *dU, int O, int I, int o0, int o1) {
    size_t plane = (size_t)O * I;
    for (int o = o0; o < o1; o++)
        for (int i = 0; i < I; i++) {
            float u[4][4], t[3][4];
            for (int xi = 0; xi < 16; xi++) u[xi / 4][xi % 4] = dU[xi * plane + (size_t)o * I + i];
            for (int v = 0; v < 4; v++) {
                t[0][v] = u[0][v] + 0.5f * (u[1][v] + u[2][v]);
                t[1][v] = 0.5f * (u[1][v] - u[2][v]);
                t[2][v] = 0.5f * (u[1][v] + u[2][v]) + u[3][v];
            }
            float *g = dw + ((size_t)o * I + i) * 9;
            for (int r = 0; r < 3; r++) {
                g[3 * r + 0] += t[r][0] + 0.5f * (t[r][1] + t[r][2]);
                g[3 * r + 1] += 0.5f * (t[r][1] - t[r][2]);
                g[3 * r + 2] += 0.5f * (t[r][1] + t[r][2]) + t[r][3];
            }
        }
}

/* A chunk: tile rows [q0, q1) of a group of images (see convolve_images) */
typedef struct {
    int q0, q1;
} chunk;

static size_t plane_stride(const wshape *s) { return (size_t)s->cmax * 2 * s->PR * s->PC; }

/* ---- the transforms vectorized over 16 consecutive tiles of a chunk --------------------- */
#ifdef __AVX512F__
#include <immintrin.h>

/* Where 16 consecutive chunk tiles lie in the planes: lanes in mask[i] belong to one tile
 * row, and lane l of them reads (row base + off[i])[l]; the row base is the tile's plane row
 * 2ty, column tx = 0, in image q / TH of the group. */
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
                     (ptrdiff_t)2 * sg->ty[i] * s->PC + tx - l;
        l += run;
    }
}

/* lanes of the segments from base + off (masked: a segment's address may lie before base) */
static inline __m512 seg_load(const float *base, const tile_segs *sg, ptrdiff_t delta) {
    __m512 v = _mm512_setzero_ps();
    for (int i = 0; i < sg->n; i++)
        v = _mm512_mask_loadu_ps(
            v, sg->mask[i],
            (const float *)((uintptr_t)base + (sg->off[i] + delta) * (ptrdiff_t)sizeof(float)));
    return v;
}

static inline __mmask16 first_lanes(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

/* V[xi][c][j0 .. j0+16) for C channels: B^T d B */
static void input_transform16(float *V, const float *planes, int C, const tile_segs *sg, int j0,
                              int nt, const wshape *s) {
    __mmask16 keep = first_lanes(nt - j0);
    size_t xs = (size_t)C * nt, PC = (size_t)s->PC, half = (size_t)s->PR * s->PC;
    for (int c = 0; c < C; c++) {
        const float *E = planes + (size_t)c * 2 * half, *O = E + half;
        __m512 x[4][4];
        __m512 d[4][4];
        for (int r = 0; r < 4; r++) {
            d[r][0] = seg_load(E, sg, (ptrdiff_t)(r * PC));
            d[r][1] = seg_load(O, sg, (ptrdiff_t)(r * PC));
            d[r][2] = seg_load(E, sg, (ptrdiff_t)(r * PC + 1));
            d[r][3] = seg_load(O, sg, (ptrdiff_t)(r * PC + 1));
        }
        for (int j = 0; j < 4; j++) {
            x[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
            x[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
            x[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
            x[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
        }
        float *v = V + (size_t)c * nt + j0;
        for (int r = 0; r < 4; r++) {
            _mm512_mask_storeu_ps(v + (4 * r + 0) * xs, keep, _mm512_sub_ps(x[r][0], x[r][2]));
            _mm512_mask_storeu_ps(v + (4 * r + 1) * xs, keep, _mm512_add_ps(x[r][1], x[r][2]));
            _mm512_mask_storeu_ps(v + (4 * r + 2) * xs, keep, _mm512_sub_ps(x[r][2], x[r][1]));
            _mm512_mask_storeu_ps(v + (4 * r + 3) * xs, keep, _mm512_sub_ps(x[r][1], x[r][3]));
        }
    }
}

/* dM[xi][c][j0 .. j0+16) for C channels: A dY A^T */
static void grad_transform16(float *dM, const float *planes, int C, const tile_segs *sg, int j0,
                             int nt, const wshape *s) {
    __mmask16 keep = first_lanes(nt - j0);
    size_t xs = (size_t)C * nt, half = (size_t)s->PR * s->PC;
    __m512 zero = _mm512_setzero_ps();
    for (int c = 0; c < C; c++) {
        const float *E = planes + (size_t)c * 2 * half, *O = E + half;
        __m512 y00 = seg_load(E, sg, 0), y01 = seg_load(O, sg, 0);
        __m512 y10 = seg_load(E, sg, s->PC), y11 = seg_load(O, sg, s->PC);
        __m512 r[4][2] = {{y00, y01},
                          {_mm512_add_ps(y00, y10), _mm512_add_ps(y01, y11)},
                          {_mm512_sub_ps(y00, y10), _mm512_sub_ps(y01, y11)},
                          {_mm512_sub_ps(zero, y10), _mm512_sub_ps(zero, y11)}};
        float *m = dM + (size_t)c * nt + j0;
        for (int q = 0; q < 4; q++) {
            _mm512_mask_storeu_ps(m + (4 * q + 0) * xs, keep, r[q][0]);
            _mm512_mask_storeu_ps(m + (4 * q + 1) * xs, keep, _mm512_add_ps(r[q][0], r[q][1]));
            _mm512_mask_storeu_ps(m + (4 * q + 2) * xs, keep, _mm512_sub_ps(r[q][0], r[q][1]));
            _mm512_mask_storeu_ps(m + (4 * q + 3) * xs, keep, _mm512_sub_ps(zero, r[q][1]));
        }
    }
}

/* out = A^T M A (+ bias) for chunk tiles j0 .. j0+16 of group g0, O channels */
static void output_transform16(float *out, const float *M, const float *bias, int O,
                               const tile_segs *sg, int j0, int nt, int g0, const wshape *s) {
    __mmask16 keep = first_lanes(nt - j0);
    size_t xs = (size_t)O * nt;
    int H = s->H, W = s->W;
    /* interleave a (even columns) and b (odd): tiles 0-7 then 8-15, two floats each */
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    float buf[2][32] __attribute__((aligned(64)));
    for (int c = 0; c < O; c++) {
        const float *m = M + (size_t)c * nt + j0;
        __m512 p[2][4];
        for (int v = 0; v < 4; v++) {
            __m512 m0 = _mm512_maskz_loadu_ps(keep, m + (0 + v) * xs);
            __m512 m1 = _mm512_maskz_loadu_ps(keep, m + (4 + v) * xs);
            __m512 m2 = _mm512_maskz_loadu_ps(keep, m + (8 + v) * xs);
            __m512 m3 = _mm512_maskz_loadu_ps(keep, m + (12 + v) * xs);
            p[0][v] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
            p[1][v] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
        }
        __m512 b = _mm512_set1_ps(bias ? bias[c] : 0.0f);
        for (int i = 0; i < 2; i++) {
            __m512 e = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(p[i][0], p[i][1]), p[i][2]), b);
            __m512 o = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(p[i][1], p[i][2]), p[i][3]), b);
            _mm512_store_ps(buf[i], _mm512_permutex2var_ps(e, lo, o));
            _mm512_store_ps(buf[i] + 16, _mm512_permutex2var_ps(e, hi, o));
        }
        for (int g = 0; g < sg->n; g++) {
            float *img = out + ((size_t)(g0 + sg->img[g]) * O + c) * H * W;
            int x0 = 2 * sg->tx0[g], w = 2 * sg->run[g];
            if (x0 + w > W) w = W - x0;
            /* floats [f0, f0 + w) of buf[i] go to row[0, w): per half of buf, one masked
             * store at row - f0 + 16h (only its own lanes are touched) */
            int f0 = 2 * sg->l0[g];
            for (int i = 0; i < 2; i++) {
                int oy = 2 * sg->ty[g] + i;
                if (oy >= H) break;
                uintptr_t row = (uintptr_t)(img + (size_t)oy * W + x0);
                for (int h = 0; h < 2; h++) {
                    int a = f0 > 16 * h ? f0 : 16 * h, z = f0 + w < 16 * h + 16 ? f0 + w : 16 * h + 16;
                    if (a >= z) continue;
                    __mmask16 mk = (__mmask16)(first_lanes(z - 16 * h) & ~first_lanes(a - 16 * h));
                    float *dst = (float *)(row + (uintptr_t)((ptrdiff_t)(16 * h - f0) *
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
static void stage_group(float *planes, const float *src, int C, int pad, int g0, int g1,
                        const wshape *s) {
    for (int img = g0; img < g1; img++)
        stage_planes(planes + (size_t)(img - g0) * plane_stride(s),
                     src + (size_t)img * C * s->H * s->W, C, s->H, s->W, pad, s);
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

/* out[b] (=, or += when accumulate) conv(in[b]) for b in [b0, b1): in has C channels, out
 * O, U = [16][O][C] */
static void convolve_images(float *out, const float *in, const float *U, const float *bias,
                            int accumulate, int C, int O, wslot *sl, int b0, int b1,
                            const wshape *s) {
    for (int g0 = b0; g0 < b1; g0 += s->imgs) {
        int g1 = g0 + s->imgs < b1 ? g0 + s->imgs : b1, nrows = (g1 - g0) * s->TH;
        stage_group(sl->planes, in, C, 1, g0, g1, s);
        for (int q0 = 0; q0 < nrows; q0 += s->rows) {
            chunk k = {q0, q0 + s->rows < nrows ? q0 + s->rows : nrows};
            int nt = (k.q1 - k.q0) * s->TW;
            transform_chunk(sl->V, sl->planes, C, &k, INPUT_TRANSFORM, s);
            for (int xi = 0; xi < 16; xi++)
                kc_sgemm(0, 0, O, nt, C, 1.0f, U + (size_t)xi * O * C, C,
                         sl->V + (size_t)xi * C * nt, nt, 0.0f, sl->M + (size_t)xi * O * nt, nt);
            if (accumulate) /* into the group's buffer: adding in place would read what the
                               previous tiles' masked stores just wrote, which stalls */
                emit_chunk(sl->acc, sl->M, bias, O, &k, 0, s);
            else
                emit_chunk(out, sl->M, bias, O, &k, g0, s);
        }
        if (accumulate) {
            float *restrict dst = out + (size_t)g0 * O * s->H * s->W;
            const float *restrict src = sl->acc;
            size_t n = (size_t)(g1 - g0) * O * s->H * s->W;
            for (size_t i = 0; i < n; i++) dst[i] += src[i];
        }
    }
}

/* dU += sum over the tiles of images [b0, b1) of dM . V^T */
static void weight_grad_images(float *dU, const float *dout, const float *in, wslot *sl, int b0,
                               int b1, const wshape *s) {
    int C = s->C, OC = s->OC;
    for (int g0 = b0; g0 < b1; g0 += s->imgs) {
        int g1 = g0 + s->imgs < b1 ? g0 + s->imgs : b1, nrows = (g1 - g0) * s->TH;
        stage_group(sl->planes, in, C, 1, g0, g1, s);
        stage_group(sl->planes2, dout, OC, 0, g0, g1, s);
        for (int q0 = 0; q0 < nrows; q0 += s->rows) {
            chunk k = {q0, q0 + s->rows < nrows ? q0 + s->rows : nrows};
            int nt = (k.q1 - k.q0) * s->TW;
            transform_chunk(sl->V, sl->planes, C, &k, INPUT_TRANSFORM, s);
            transform_chunk(sl->M, sl->planes2, OC, &k, GRAD_TRANSFORM, s);
            for (int xi = 0; xi < 16; xi++)
                kc_sgemm(0, 1, OC, C, nt, 1.0f, sl->M + (size_t)xi * OC * nt, nt,
                         sl->V + (size_t)xi * C * nt, nt, 1.0f, dU + (size_t)xi * OC * C, C);
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
    float *U = scratch;
    int nt = wino_threads(&s);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int tid = KC_TID(), nth = KC_NT(), lo, hi;
        kc_split(OC, nth, tid, &lo, &hi);
        filter_transform(U, w, OC, C, lo, hi);
        KC_OMP(omp barrier)
        kc_split(B, nth, tid, &lo, &hi);
        wslot sl = slot_at(scratch, &s, tid);
        convolve_images(out, inp, U, b, 0, C, OC, &sl, lo, hi, &s);
    }
}

/* sum of x[0:n) in 16 lanes (see conv2d.c) */
static float sum_lanes(const float *x, int n) {
    float acc[16] = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++) acc[k] += x[j + k];
    for (int k = 0; j + k < n; k++) acc[k] += x[j + k];
    float sum = 0.0f;
    for (int k = 0; k < 16; k++) sum += acc[k];
    return sum;
}

void winograd3x3_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, float *scratch, int B, int C, int H, int W, int OC) {
    if (B <= 0 || (!dinp && !dw && !db)) return;
    wshape s = wshape_of(B, C, H, W, OC);
    float *U = scratch, *wflip = scratch + U_floats(&s);
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
        }
        kc_split(B, nth, tid, &lo, &hi);
        wslot sl = slot_at(scratch, &s, tid);
        if (db) {
            memset(sl.db, 0, (size_t)OC * sizeof(float));
            for (int i = lo; i < hi; i++)
                for (int oc = 0; oc < OC; oc++)
                    sl.db[oc] += sum_lanes(dout + ((size_t)i * OC + oc) * HW, HW);
        }
        if (dw) {
            memset(sl.dU, 0, dU_floats(&s) * sizeof(float));
            memset(sl.dw, 0, (size_t)OC * C * 9 * sizeof(float));
            weight_grad_images(sl.dU, dout, inp, &sl, lo, hi, &s);
            filter_grad_transform(sl.dw, sl.dU, OC, C, 0, OC);
        }
        if (dinp) convolve_images(dinp, dout, U, NULL, 1, OC, C, &sl, lo, hi, &s);
        KC_OMP(omp barrier)
        /* partials summed in thread order: results depend only on the thread count */
        if (dw) {
            size_t a, z;
            kc_split16((size_t)OC * C * 9, nth, tid, &a, &z);
            for (int t = 0; t < nth; t++) {
                wslot o = slot_at(scratch, &s, t);
                for (size_t i = a; i < z; i++) dw[i] += o.dw[i];
            }
        }
        if (db && tid == 0)
            for (int t = 0; t < nth; t++) {
                wslot o = slot_at(scratch, &s, t);
                for (int i = 0; i < OC; i++) db[i] += o.db[i];
            }
    }
}
