/* linreg.c: linear regression, y = w.x + b, fitted by mean squared error: the smallest
 * complete job, written by README's "Add a job" recipe (and built by the tests only).
 *
 * Data: synthetic, so that the job needs no file. The true weights come from (seed); a
 * training example is x ~ N(0, I), y = w_true.x + b_true + noise * N(0, 1), drawn from a
 * stream of (seed, step, micro-batch, rank): a step's data is a function of the step, so a
 * resume needs no data cursor (no save_state), as for gpt. Evaluation: a fixed held-out set
 * (the same stream for every seed and world size), split over the ranks.
 *
 * Memory: the parameters and gradients are the backend's (a GPU's with --device cuda), which
 * host code must not touch. So the data is drawn on the host and copied in, and the model
 * runs as kernels.h ops (a linear layer with one output, the MSE) on the backend; only the
 * loss comes back. */
#include "linreg.h"

#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "kernels.h"
#include "trainer.h"
#include "util.h"

#define TRUE_STREAM 0x74727565ull /* "true" */
#define TRAIN_STREAM 0x747261696eull
#define EVAL_SEED 0x6576616cull

static const cfg_spec linreg_keys[] = {
    {"dim", CFG_INT, "16", "1..4096", "input features"},
    {"noise", CFG_FLOAT, "0.1", "0..", "standard deviation of the label noise"},
    {"examples", CFG_INT, "4096", "1..", "training examples per epoch"},
    {"eval_examples", CFG_INT, "1024", "1..", "held-out examples per evaluation"},
    {NULL, 0, NULL, NULL, NULL},
};

/* The trainer defaults this job changes (config-file syntax). */
static const char linreg_defaults[] = "epochs = 3\nbatch_size = 32\nlr = 0.05\n";

typedef struct linreg {
    int dim, local_batch;
    int w, b;          /* tensor indices: weight [1, dim], bias [1] */
    float *w_true, b_true, noise;
    float *x, *y;      /* one micro-batch on the host: x [local_batch, dim], y [local_batch] */
    /* the same in the backend's memory, and the model's output and its gradient there */
    float *dev_x, *dev_y, *pred, *dpred;
} linreg;

static void *linreg_create(trainer *t) {
    linreg *l = xcalloc(1, sizeof *l);
    l->dim = (int)config_int(&t->cfg, "dim");
    l->noise = (float)config_float(&t->cfg, "noise");
    l->local_batch = (int)(config_int(&t->cfg, "batch_size") / t->world);
    l->w = model_add(&t->model, "weight", 2, (int[]){1, l->dim}, 1);
    l->b = model_add(&t->model, "bias", 1, (int[]){1}, 0);
    l->w_true = xmalloc((size_t)l->dim * sizeof *l->w_true);
    rng r;
    rng_seed(&r, (uint64_t)config_int(&t->cfg, "seed"), TRUE_STREAM);
    for (int k = 0; k < l->dim; k++) l->w_true[k] = rng_normal(&r);
    l->b_true = rng_normal(&r);
    l->x = xmalloc((size_t)l->local_batch * l->dim * sizeof *l->x);
    l->y = xmalloc((size_t)l->local_batch * sizeof *l->y);
    l->dev_x = kernels_alloc((size_t)l->local_batch * l->dim);
    l->dev_y = kernels_alloc((size_t)l->local_batch);
    l->pred = kernels_alloc((size_t)l->local_batch);
    l->dpred = kernels_alloc((size_t)l->local_batch);
    return l;
}

/* Rank 0 starts from zero weights; the trainer broadcasts them. (init_params writes the
 * host copy of the parameters, the one place where the host may.) */
static void linreg_init(void *js, trainer *t, rng *r) {
    linreg *l = js;
    (void)r;
    memset(model_param(&t->model, l->w), 0, (size_t)l->dim * sizeof(float));
    model_param(&t->model, l->b)[0] = 0;
}

static long linreg_steps_per_epoch(void *js, trainer *t) {
    (void)js;
    return config_int(&t->cfg, "examples") / config_int(&t->cfg, "batch_size") / t->grad_accum;
}

static long linreg_start_epoch(void *js, trainer *t, long epoch) {
    (void)epoch;
    return linreg_steps_per_epoch(js, t);
}

/* example i of the host buffers l->x, l->y from stream r */
static void draw(linreg *l, rng *r, int i) {
    float *x = l->x + (size_t)i * l->dim, y = l->b_true;
    for (int k = 0; k < l->dim; k++) x[k] = rng_normal(r), y += l->w_true[k] * x[k];
    l->y[i] = y + l->noise * rng_normal(r);
}

/* Mean squared error of the model on the first n examples of l->x, l->y; with grads,
 * accumulates its gradient scaled by `scale` (1 / grad_accum: the sum over micro-batches is
 * their mean). The data goes in, the model's ops run on the backend, the loss comes out. */
static float mse(linreg *l, trainer *t, int n, float scale, int grads) {
    model *m = &t->model;
    kernels_to_device(l->dev_x, l->x, (size_t)n * l->dim * sizeof *l->x);
    kernels_to_device(l->dev_y, l->y, (size_t)n * sizeof *l->y);
    /* pred[n] = x[n,dim] . w[1,dim]^T + b */
    linear_forward(l->pred, l->dev_x, model_param(m, l->w), model_param(m, l->b), n, l->dim, 1);
    float loss = mse_forward(l->pred, l->dev_y, (size_t)n);
    if (grads) {
        kernels_zero(l->dpred, (size_t)n * sizeof *l->dpred);
        mse_backward(l->dpred, l->pred, l->dev_y, (size_t)n, scale);
        linear_backward(NULL, model_grad(m, l->w), model_grad(m, l->b), l->dpred, l->dev_x,
                        model_param(m, l->w), n, l->dim, 1);
        model_grads_ready(m, l->w); /* every gradient is final */
    }
    return loss;
}

static float linreg_forward_backward(void *js, trainer *t, long step_in_epoch, int micro, long *items) {
    linreg *l = js;
    (void)step_in_epoch; /* the data follows the global step */
    rng r;
    rng_seed(&r, (uint64_t)config_int(&t->cfg, "seed") ^ TRAIN_STREAM, (uint64_t)t->step);
    rng_seed(&r, rng_u64(&r), ((uint64_t)(uint32_t)t->rank << 32) | (uint32_t)micro);
    for (int i = 0; i < l->local_batch; i++) draw(l, &r, i);
    *items = l->local_batch;
    return mse(l, t, l->local_batch, 1.0f / (float)t->grad_accum, 1);
}

/* Held-out example j comes from (EVAL_SEED, j); rank r takes its contiguous share, in
 * chunks of the batch buffers. */
static void linreg_eval(void *js, trainer *t, metrics *out) {
    linreg *l = js;
    long total = config_int(&t->cfg, "eval_examples");
    long lo = total * t->rank / t->world, hi = total * (t->rank + 1) / t->world;
    double sums[2] = {0, 0};
    for (long j = lo; j < hi; j += l->local_batch) {
        int n = (int)(hi - j < l->local_batch ? hi - j : l->local_batch);
        for (int i = 0; i < n; i++) {
            rng r;
            rng_seed(&r, EVAL_SEED, (uint64_t)(j + i));
            draw(l, &r, i);
        }
        sums[0] += (double)mse(l, t, n, 0, 0) * n;
        sums[1] += n;
    }
    comm_allreduce_sum_f64(t->comm, sums, 2);
    metrics_set(out, "test_loss", sums[0] / sums[1]);
}

static void linreg_finish(void *js, trainer *t, metrics *summary) {
    (void)js;
    double val = 0;
    if (metrics_get(summary, "test_loss", &val)) trainer_log(t, "final test loss %.6f\n", val);
}

static void linreg_destroy(void *js) {
    linreg *l = js;
    free(l->w_true);
    free(l->x);
    free(l->y);
    kernels_free(l->dev_x), kernels_free(l->dev_y), kernels_free(l->pred), kernels_free(l->dpred);
    free(l);
}

const job linreg_job = {
    .name = "linreg",
    .description = "Linear regression on synthetic data (README's \"Add a job\" example).",
    .keys = linreg_keys,
    .unit = "examples",
    .defaults = linreg_defaults,
    .create = linreg_create,
    .init_params = linreg_init,
    .steps_per_epoch = linreg_steps_per_epoch,
    .start_epoch = linreg_start_epoch,
    .forward_backward = linreg_forward_backward,
    .eval = linreg_eval,
    .finish = linreg_finish,
    .destroy = linreg_destroy,
};
