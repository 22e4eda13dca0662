/* test_grads_ready.c: each job's backward pass reports its progress through model_grads_ready
 * truthfully, which the trainer relies on to all-reduce a tail of the gradient arena while
 * backward still runs (core/params.h).
 *
 * For the GPT, LeNet, the MLP and the U-Net: a recorder stands in for the trainer's
 * on_grads_ready and snapshots the gradient arena from each reported offset to its end. After
 * the backward pass, every snapshot must equal the final gradients bit for bit (a report made
 * before some op still added to that tail would differ), the offsets must fall strictly (each
 * report moves the boundary down) and the last must be 0 (the whole arena), and the count must
 * be one per block or layer as the models promise, so that reductions can overlap at all. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "classify/model.h"
#include "diffusion/model.h"
#include "gpt/model.h"
#include "gradcheck.h"
#include "kernels.h"

#define MAX_REPORTS 64

typedef struct recorder {
    const model *m;
    int n;
    size_t from[MAX_REPORTS];
    float *snap[MAX_REPORTS]; /* grads[from, nfloats) when reported */
} recorder;

/* The CPU backend: the arena is host memory, so the recorder may read it directly. */
static void record(void *arg, size_t from) {
    recorder *r = arg;
    cr_assert(r->n < MAX_REPORTS, "more than %d reports", MAX_REPORTS);
    cr_assert(from < r->m->nfloats, "report at %zu outside the arena (%zu)", from, r->m->nfloats);
    size_t len = r->m->nfloats - from;
    r->snap[r->n] = malloc(len * sizeof(float));
    cr_assert(r->snap[r->n]);
    memcpy(r->snap[r->n], r->m->grads + from, len * sizeof(float));
    r->from[r->n++] = from;
}

static void listen(recorder *r, model *m) {
    memset(r, 0, sizeof *r);
    r->m = m;
    m->on_grads_ready = record;
    m->grads_ready_arg = r;
}

/* The checks of the header comment; frees the snapshots. */
static void check_reports(recorder *r, int expected, const char *what) {
    const model *m = r->m;
    cr_expect_eq(r->n, expected, "%s: %d reports, expected %d", what, r->n, expected);
    int nonzero = 0;
    for (size_t k = 0; k < m->nfloats; k++) nonzero += m->grads[k] != 0.0f;
    cr_assert(nonzero > 0, "%s: the backward pass left no gradient", what);
    for (int i = 0; i < r->n; i++) {
        if (i > 0)
            cr_expect(r->from[i] < r->from[i - 1], "%s: report %d at %zu does not move the boundary down from %zu",
                      what, i, r->from[i], r->from[i - 1]);
        size_t len = m->nfloats - r->from[i];
        for (size_t k = 0; k < len; k++)
            if (memcmp(&r->snap[i][k], &m->grads[r->from[i] + k], sizeof(float)) != 0) {
                cr_expect(0, "%s: report %d said float %zu on was final, but float %zu changed after it "
                          "(%g then %g)", what, i, r->from[i], r->from[i] + k, r->snap[i][k],
                          m->grads[r->from[i] + k]);
                break;
            }
        free(r->snap[i]);
    }
    if (r->n > 0) cr_expect_eq(r->from[r->n - 1], 0, "%s: the last report does not cover the arena", what);
}

/* ---- GPT: ln_f, then each block, then the embeddings ---------------------------------- */

static void gpt_case(int bias) {
    gpt_config c = {.n_layer = 3, .n_head = 2, .n_embd = 8, .block_size = 6, .vocab_size = 11,
                    .padded_vocab = 16, .bias = bias};
    gpt g;
    model m = {0};
    gpt_build(&g, &m, &c);
    model_alloc(&m);
    gpt_alloc_acts(&g, 2, 5);
    rng r;
    rng_seed(&r, 3, 1);
    gpt_init_params(&g, &m, &r);
    int32_t tokens[10], targets[10];
    for (int i = 0; i < 10; i++) tokens[i] = (int32_t)rng_below(&r, 11), targets[i] = (int32_t)rng_below(&r, 11);
    recorder rec;
    listen(&rec, &m);
    model_zero_grads(&m);
    gpt_forward(&g, &m, tokens, targets, 2, 5);
    gpt_backward(&g, &m, 0.1f);
    check_reports(&rec, c.n_layer + 2, bias ? "GPT with biases" : "GPT");
    gpt_free(&g);
    model_free(&m);
}

Test(grads_ready, gpt) { gpt_case(0); }
Test(grads_ready, gpt_bias) { gpt_case(1); }

/* ---- classify: each layer with parameters ----------------------------------------------- */

static void classify_case(int lenet) {
    classifier n;
    model m = {0};
    if (lenet) classifier_build_lenet(&n, &m, 28, 28, 1);
    else classifier_build_mlp(&n, &m, 28, 28, 1, 16);
    model_alloc(&m);
    classifier_alloc(&n, 3);
    rng r;
    rng_seed(&r, 5, 2);
    classifier_init_params(&n, &m, &r);
    uint8_t images[3 * 28 * 28], labels[3] = {1, 7, 4};
    for (size_t i = 0; i < sizeof images; i++) images[i] = (uint8_t)rng_below(&r, 256);
    recorder rec;
    listen(&rec, &m);
    model_zero_grads(&m);
    classifier_forward(&n, &m, images, 3);
    classifier_loss(&n, labels, 3);
    classifier_backward(&n, &m, 3, 1.0f / 3);
    check_reports(&rec, lenet ? 5 : 2, lenet ? "LeNet" : "MLP");
    classifier_free(&n);
    model_free(&m);
}

Test(grads_ready, lenet) { classify_case(1); }
Test(grads_ready, mlp) { classify_case(0); }

/* ---- U-Net: the head, each block (up, mid, down), conv_in, then the embeddings --------- */

Test(grads_ready, unet) {
    unet_config cfg = {.H = 8, .W = 8, .levels = 3, .width = {4, 8, 8}, .blocks = 2, .groups = 2, .heads = 2};
    unet u;
    model m = {0};
    unet_build(&u, &m, &cfg);
    model_alloc(&m);
    rng r;
    rng_seed(&r, 7, 0);
    unet_init_params(&u, &m, &r);
    const int B = 3;
    float x[3 * 64], dout[3 * 64];
    int32_t t[3] = {0, 417, 999}, y[3] = {3, UNET_NCLASSES, 3};
    gc_fill_uniform(x, 3 * 64, 11, -1.5f, 1.5f);
    gc_fill_uniform(dout, 3 * 64, 12, -1.0f, 1.0f);
    unet_reserve(&u, B, 1);
    recorder rec;
    listen(&rec, &m);
    model_zero_grads(&m);
    unet_forward(&u, &m, x, t, y, B);
    unet_backward(&u, &m, dout, B);
    /* out.gn, 2 x 2 up blocks, the attention, 3 x 2 down blocks, conv_in, label table,
     * time fc2, time fc1 */
    check_reports(&rec, 1 + 4 + 1 + 6 + 1 + 3, "U-Net");
    unet_free(&u);
    model_free(&m);
}
