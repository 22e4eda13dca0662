/* classify.c: the `classify` job: LeNet-5 and an MLP (model.c) on labelled images,
 * data-parallel.
 *
 * The loss is softmax cross-entropy, mean over the rank's batch; the trainer's all-reduce of
 * the gradient mean over ranks makes it the global-batch mean. */
#include "classify.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image_augment.h"
#include "image_epoch.h"
#include "image_labels.h"
#include "image_shard.h"
#include "kernels.h"
#include "model.h"
#include "util.h"

#define NCLASSES CLASSIFY_CLASSES
#define EVAL_CHUNK 500
#define AUGMENT_STREAM 0xA06E5ull /* mixed into the seed of the shifts' streams */

static const cfg_spec classify_keys[] = {
    {"model", CFG_ENUM, "lenet", "lenet|mlp", "network: LeNet-5 or MLP 784-hidden-10"},
    {"data", CFG_STRING, "data/mnist.h5", NULL, "HDF5 file from `dtrain prepare mnist`"},
    {"hidden", CFG_INT, "256", "1..65536", "hidden width of the MLP"},
    {"shuffle", CFG_INT, "1", "0..1", "reshuffle each rank's shard every epoch"},
    {"augment_shift", CFG_INT, "1", "0..8", "training images move by up to this many pixels each way (0 = off)"},
    {NULL, 0, NULL, NULL, NULL},
};

typedef struct classify {
    image_epoch order; /* first: the image_epoch_job_* entries of the job table take it */
    classifier net;
    int H, W, C;     /* input image */
    int cap;         /* examples per forward: the activations' capacity */
    int local_batch; /* examples per step on this rank */
    uint8_t *img_buf, *lab_buf;
    float *logits_buf;      /* [cap,K] an eval chunk's logits, copied out for the argmax */
    uint8_t *shift_buf;     /* one image, for augment_shift */
    int augment_shift;      /* the key, read once */
    uint64_t augment_seed;  /* seed of the shifts' streams */
    long *idx_buf;          /* the batch's indices in the training set */
    image_shard *train, *test;
    FILE *trace;            /* test hook, see trace_examples */
    long confusion[NCLASSES * NCLASSES]; /* from the last eval: [true][pred] */
} classify;

static void alloc_buffers(classify *c) {
    size_t in = (size_t)c->C * c->H * c->W;
    classifier_alloc(&c->net, c->cap);
    c->img_buf = xmalloc((size_t)c->cap * in);
    c->lab_buf = xmalloc((size_t)c->cap);
    c->logits_buf = xmalloc((size_t)c->cap * NCLASSES * sizeof *c->logits_buf);
    c->shift_buf = xmalloc(in);
    c->idx_buf = xmalloc((size_t)c->cap * sizeof *c->idx_buf);
}

static void *classify_create(trainer *t) {
    classify *c = xcalloc(1, sizeof *c);
    const char *path = config_str(&t->cfg, "data");
    char err[1024];
    c->train = image_shard_open(path, "train", t->rank, t->world, err, sizeof err);
    trainer_check(t, !c->train, EXIT_USAGE, "%s", err);
    c->test = image_shard_open(path, "test", t->rank, t->world, err, sizeof err);
    trainer_check(t, !c->test, EXIT_USAGE, "%s", err);
    /* the model and the buffers are sized from the train split; evaluation copies test
     * images into them */
    trainer_check(t, image_shard_check_like(c->test, c->train, path, "test", "train", err, sizeof err) != 0,
                  EXIT_USAGE, "%s", err);
    trainer_check(t, image_labels_check(c->train, path, "train", NCLASSES, err, sizeof err) != 0 ||
                         image_labels_check(c->test, path, "test", NCLASSES, err, sizeof err) != 0,
                  EXIT_USAGE, "%s", err);
    c->H = image_shard_height(c->train);
    c->W = image_shard_width(c->train);
    c->C = image_shard_channels(c->train);
    if (strcmp(config_str(&t->cfg, "model"), "lenet") == 0) {
        trainer_check(t, c->H != 28 || c->W != 28 || c->C != 1, EXIT_USAGE,
                      "%s: /train/images: LeNet expects 28x28x1 images, got %dx%dx%d", path, c->H, c->W, c->C);
        classifier_build_lenet(&c->net, &t->model, c->H, c->W, c->C);
    } else {
        classifier_build_mlp(&c->net, &t->model, c->H, c->W, c->C, (int)config_int(&t->cfg, "hidden"));
    }
    c->local_batch = (int)(config_int(&t->cfg, "batch_size") / t->world);
    c->cap = c->local_batch > EVAL_CHUNK ? c->local_batch : EVAL_CHUNK;
    alloc_buffers(c);
    c->augment_shift = (int)config_int(&t->cfg, "augment_shift");
    c->augment_seed = (uint64_t)config_int(&t->cfg, "seed") ^ (AUGMENT_STREAM << 40);
    image_epoch_init(&c->order, c->train, path, (uint64_t)config_int(&t->cfg, "seed"),
                     (int)config_int(&t->cfg, "shuffle"), (long)c->local_batch * t->grad_accum);
    const char *trace = getenv("DTRAIN_TEST_TRACE_EXAMPLES");
    if (trace) {
        char path[1024];
        snprintf(path, sizeof path, "%s.%d", trace, t->rank);
        if (!(c->trace = fopen(path, "a"))) trainer_fail(t, EXIT_RUNTIME, "%s: cannot open", path);
    }
    return c;
}

/* Glorot/Xavier (model.c). Rank 0 draws, then broadcasts. */
static void classify_init(void *js, trainer *t, rng *r) {
    classify *c = js;
    classifier_init_params(&c->net, &t->model, r);
}

/* ---- forward and backward ----------------------------------------------------------- */

float classify_batch(void *js, trainer *t, const uint8_t *images, const uint8_t *labels, int n) {
    classify *c = js;
    classifier_forward(&c->net, &t->model, images, n);
    float loss = classifier_loss(&c->net, labels, n);
    classifier_backward(&c->net, &t->model, n, 1.0f / ((float)n * (float)t->grad_accum));
    return loss;
}

void classify_logits(void *js, trainer *t, const uint8_t *images, int n, float *logits) {
    classify *c = js;
    classifier_forward(&c->net, &t->model, images, n);
    classifier_to_host(&c->net, c->net.nlayers, n, logits);
}

int classify_features(void *js, trainer *t, const uint8_t *images, int n, float *feat) {
    classify *c = js;
    int width = classifier_feature_width(&c->net);
    if (!feat) return width;
    classifier_forward(&c->net, &t->model, images, n);
    classifier_to_host(&c->net, c->net.nlayers - 1, n, feat);
    return width;
}

/* Test hook (DTRAIN_TEST_TRACE_EXAMPLES=PREFIX): each rank appends "epoch index" lines for
 * every training example it consumes to PREFIX.RANK, so that tests can check that a
 * resumed epoch neither repeats nor skips examples. */
static void trace_examples(classify *c, trainer *t, long pos, int n);


/* Augmentation (augment_shift = max): each training image moves by (dx, dy), each uniform
 * in [-max, max], and the pixels it uncovers are 0, MNIST's background. The shift of an
 * example is drawn from its own stream, (seed, epoch, index in the training set): not from
 * the rank's stream, whose draws would depend on the number of ranks and the order in the
 * batch. So 2 ranks x 32 still train exactly as 1 rank x 64, and any resume continues the
 * same augmentation. Evaluation sees the images as they are. */
void classify_augment(void *js, uint8_t *images, const long *global_idx, int n, long epoch) {
    classify *c = js;
    int max = c->augment_shift;
    if (max == 0) return;
    const size_t bytes = (size_t)c->H * c->W * c->C;
    for (int b = 0; b < n; b++) {
        rng r;
        rng_seed(&r, c->augment_seed, (uint64_t)epoch << 40 ^ (uint64_t)global_idx[b]);
        int dx = (int)rng_below(&r, (uint64_t)(2 * max + 1)) - max;
        int dy = (int)rng_below(&r, (uint64_t)(2 * max + 1)) - max;
        uint8_t *img = images + (size_t)b * bytes;
        image_shift(c->shift_buf, img, c->H, c->W, c->C, dx, dy);
        memcpy(img, c->shift_buf, bytes);
    }
}

/* Micro-batch `micro` of step `step`: this rank's next local_batch images of the epoch order. */
static float classify_forward_backward(void *js, trainer *t, long step, int micro, long *items) {
    classify *c = js;
    int n = c->local_batch;
    long pos = image_epoch_batch(&c->order, t, step, micro, n, c->img_buf, c->lab_buf, c->idx_buf);
    classify_augment(c, c->img_buf, c->idx_buf, n, t->epoch);
    *items = n;
    float loss = classify_batch(c, t, c->img_buf, c->lab_buf, n);
    if (c->trace) trace_examples(c, t, pos, n);
    return loss;
}

/* ---- evaluation --------------------------------------------------------------------- */

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Every rank evaluates its shard of the test set; sums are combined over ranks. */
static void classify_eval(void *js, trainer *t, metrics *out) {
    classify *c = js;
    image_shard_set_epoch(c->test, 0, 0, 0);
    long n = image_shard_size(c->test);
    double loss_sum = 0;
    int64_t conf[NCLASSES * NCLASSES] = {0};
    for (long pos = 0; pos < n; pos += c->cap) {
        int k = (int)(n - pos < c->cap ? n - pos : c->cap);
        image_shard_get(c->test, pos, k, c->img_buf, c->lab_buf, NULL);
        classifier_forward(&c->net, &t->model, c->img_buf, k);
        const float *logits = c->logits_buf;
        classifier_to_host(&c->net, c->net.nlayers, k, c->logits_buf);
        loss_sum += (double)classifier_loss(&c->net, c->lab_buf, k) * k;
        for (int b = 0; b < k; b++)
            conf[c->lab_buf[b] * NCLASSES + argmax(logits + (size_t)b * NCLASSES, NCLASSES)]++;
    }
    double sums[2] = {loss_sum, (double)n};
    comm_allreduce_sum_f64(t->comm, sums, 2);
    comm_allreduce_sum_i64(t->comm, conf, NCLASSES * NCLASSES);
    long correct = 0;
    for (int k = 0; k < NCLASSES; k++) correct += conf[k * NCLASSES + k];
    for (int k = 0; k < NCLASSES * NCLASSES; k++) c->confusion[k] = conf[k];
    metrics_set(out, "test_loss", sums[0] / sums[1]);
    metrics_set(out, "test_acc", (double)correct / sums[1]);
}

static void classify_finish(void *js, trainer *t, metrics *summary) {
    classify *c = js;
    trainer_log(t, "\nclass  precision  recall   (test set)\n");
    for (int k = 0; k < NCLASSES; k++) {
        long tp = c->confusion[k * NCLASSES + k], pred = 0, truth = 0;
        for (int j = 0; j < NCLASSES; j++) {
            pred += c->confusion[j * NCLASSES + k];
            truth += c->confusion[k * NCLASSES + j];
        }
        double precision = pred ? (double)tp / pred : 0, recall = truth ? (double)tp / truth : 0;
        trainer_log(t, "%5d  %9.4f  %6.4f\n", k, precision, recall);
        char key[32];
        snprintf(key, sizeof key, "precision_%d", k);
        metrics_set(summary, key, precision);
        snprintf(key, sizeof key, "recall_%d", k);
        metrics_set(summary, key, recall);
    }
    trainer_log(t, "\nconfusion matrix (rows: true class, columns: predicted)\n     ");
    for (int j = 0; j < NCLASSES; j++) trainer_log(t, "%5d", j);
    for (int k = 0; k < NCLASSES; k++) {
        trainer_log(t, "\n%5d", k);
        for (int j = 0; j < NCLASSES; j++) trainer_log(t, "%5ld", c->confusion[k * NCLASSES + j]);
    }
    trainer_log(t, "\n");
    double acc = 0;
    metrics_get(summary, "test_acc", &acc);
    trainer_log(t, "\nfinal test accuracy: %.2f%%\n", 100.0 * acc);
}


static void trace_examples(classify *c, trainer *t, long pos, int n) {
    long *idx = xmalloc((size_t)n * sizeof *idx);
    image_shard_get(image_epoch_shard(&c->order), pos, n, NULL, NULL, idx);
    for (int i = 0; i < n; i++) fprintf(c->trace, "%ld %ld\n", t->epoch, idx[i]);
    fflush(c->trace);
    free(idx);
}

static void classify_destroy(void *js) {
    classify *c = js;
    classifier_free(&c->net);
    free(c->img_buf);
    free(c->lab_buf);
    free(c->logits_buf);
    free(c->shift_buf);
    free(c->idx_buf);
    image_shard_close(c->train);
    image_shard_close(c->test);
    image_epoch_free(&c->order);
    if (c->trace) fclose(c->trace);
    free(c);
}

const job classify_job = {
    .name = "classify",
    .description = "Image classification (MNIST LeNet-5 or MLP), data-parallel over MPI ranks.",
    .keys = classify_keys,
    .unit = "images",
    .create = classify_create,
    .init_params = classify_init,
    .steps_per_epoch = image_epoch_job_steps,
    .start_epoch = image_epoch_job_start,
    .forward_backward = classify_forward_backward,
    .eval = classify_eval,
    .finish = classify_finish,
    .destroy = classify_destroy,
    .state_fields = image_epoch_state_fields,
    .save_state = image_epoch_job_save,
    .load_state = image_epoch_job_load,
};
