/* outputs_classify.c: a classifier's real output (the confusion matrix of the test set,
 * computed from its checkpoint) and its predictability (every test image classified twice:
 * how many get the same label both times). In-process, through trainer_load_for_inference
 * and classify_logits, the functions the diffusion judge uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify/classify.h"
#include "image_shard.h"
#include "report.h"
#include "trainer.h"
#include "util.h"

#define CHUNK 500

/* labels predicted for n images (HW bytes each) */
static void predict(trainer *t, const uint8_t *imgs, long n, long HW, int *pred) {
    float *logits = xmalloc((size_t)CHUNK * 10 * sizeof *logits);
    for (long i = 0; i < n; i += CHUNK) {
        int k = (int)(n - i < CHUNK ? n - i : CHUNK);
        classify_logits(t->js, t, imgs + (size_t)i * HW, k, logits);
        for (int b = 0; b < k; b++) {
            int best = 0;
            for (int c = 1; c < 10; c++)
                if (logits[b * 10 + c] > logits[b * 10 + best]) best = c;
            pred[i + b] = best;
        }
    }
    free(logits);
}

static void tally(run_outputs *o, const uint8_t *labels, const int *first, const int *second, long n) {
    memset(o->confusion, 0, sizeof o->confusion);
    o->pred_same = 0;
    for (long i = 0; i < n; i++) {
        if (labels[i] < 10) o->confusion[labels[i]][first[i]]++;
        o->pred_same += first[i] == second[i];
    }
    o->pred_total = n;
    o->has_confusion = 1;
}

void outputs_classify(const run_files *r, run_outputs *o) {
    const char *data = run_cfg(r, "data");
    char err[1024];
    image_shard *s = image_shard_open(data, "test", 0, 1, err, sizeof err);
    if (!s) {
        fprintf(stderr, "dtrain report: %s: no confusion matrix: %s\n", r->dir, err);
        return;
    }
    trainer t;
    char *argv[] = {"classify", NULL};
    if (trainer_load_for_inference(&t, &classify_job, r->ckpt, 1, argv) != 0) {
        fprintf(stderr, "dtrain report: %s: no confusion matrix: the checkpoint did not load\n", r->dir);
        if (t.comm) trainer_teardown(&t);
        image_shard_close(s);
        return;
    }
    long n = image_shard_size(s), HW = (long)image_shard_height(s) * image_shard_width(s) * image_shard_channels(s);
    uint8_t *imgs = xmalloc((size_t)(n * HW)), *labels = xmalloc((size_t)n);
    image_shard_get(s, 0, (int)n, imgs, labels, NULL);
    int *first = xmalloc((size_t)n * sizeof *first), *second = xmalloc((size_t)n * sizeof *second);
    predict(&t, imgs, n, HW, first);
    predict(&t, imgs, n, HW, second);
    tally(o, labels, first, second, n);
    free(imgs), free(labels), free(first), free(second);
    trainer_teardown(&t);
    image_shard_close(s);
}
