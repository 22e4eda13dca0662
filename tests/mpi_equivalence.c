/* Data-parallel equivalence: W ranks with batch B/W each must give the same parameters as
 * 1 rank with batch B over the same examples.
 *
 *   mpirun -np W mpi_equivalence --data FILE.h5 --model lenet --batch_size 64 \
 *       --steps K --dump PARAMS.bin [--key value ...]
 *   mpi_equivalence --compare A.bin B.bin TOL
 *
 * Step k's global batch is examples perm[kB, (k+1)B) of a fixed permutation of the
 * whole training set; rank r takes its contiguous B/W slice of it. Each rank runs the
 * classify job's own forward/backward on its slice, then the trainer's real gradient
 * path (all-reduce mean, clip, optimizer). --compare prints the relative L2 distance. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify/classify.h"
#include "dump_file.h"
#include "image_shard.h"
#include "rng.h"
#include "trainer.h"
#include "util.h"

static int compare(const char *a, const char *b, double tol) {
    size_t na, nb;
    float *pa = dump_read(a, &na), *pb = dump_read(b, &nb);
    if (na != nb) {
        printf("FAIL: %s has %zu floats, %s has %zu\n", a, na, b, nb);
        return 1;
    }
    double diff = 0, norm = 0, maxabs = 0;
    for (size_t i = 0; i < na; i++) {
        double d = (double)pa[i] - pb[i];
        diff += d * d;
        norm += (double)pa[i] * pa[i];
        if (fabs(d) > maxabs) maxabs = fabs(d);
    }
    double rel = sqrt(diff / norm);
    printf("%zu parameters: relative L2 distance %.3e, max |diff| %.3e (tolerance %.1e)\n", na, rel,
           maxabs, tol);
    free(pa);
    free(pb);
    if (rel > tol) {
        printf("FAIL\n");
        return 1;
    }
    printf("OK\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--compare") == 0) return compare(argv[2], argv[3], atof(argv[4]));
    const char *steps_s = take_arg(&argc, argv, "--steps"), *dump = take_arg(&argc, argv, "--dump");
    if (!steps_s || !dump) DIE("usage: mpi_equivalence --steps K --dump FILE [--key value ...]");
    long steps = atol(steps_s);

    trainer t;
    argv[0] = "classify";
    int rc = trainer_setup(&t, &classify_job, argc, argv);
    if (rc != 0) return rc;
    int B = (int)config_int(&t.cfg, "batch_size"), b = B / t.world;

    char err[1024];
    image_shard *all = image_shard_open(config_str(&t.cfg, "data"), "train", 0, 1, err, sizeof err);
    if (!all) DIE("%s", err);
    image_shard_set_epoch(all, 12345, 0, 1);
    long need = steps * B;
    if (need > image_shard_size(all)) DIE("not enough examples for %ld steps", steps);
    size_t px = (size_t)image_shard_height(all) * image_shard_width(all) * image_shard_channels(all);
    uint8_t *images = xmalloc((size_t)b * px), *labels = xmalloc((size_t)b);
    long *idx = xmalloc((size_t)b * sizeof *idx);

    for (long k = 0; k < steps; k++) {
        image_shard_get(all, k * B + (long)t.rank * b, b, images, labels, idx);
        /* the job's augmentation (on by default), keyed by the examples, not the ranks */
        classify_augment(t.js, images, idx, b, 0);
        model_zero_grads(&t.model);
        float loss = classify_batch(t.js, &t, images, labels, b);
        trainer_apply_gradients(&t);
        if (t.rank == 0) printf("step %ld: rank-0 loss %.6f grad norm %.6f\n", k + 1, loss, t.grad_norm);
    }
    if (t.rank == 0) {
        model_download(&t.model); /* the parameters may live on a GPU */
        FILE *f = fopen(dump, "wb");
        if (!f || fwrite(t.model.host, sizeof(float), t.model.nfloats, f) != t.model.nfloats)
            DIE("%s: cannot write", dump);
        fclose(f);
    }
    free(images);
    free(labels);
    free(idx);
    image_shard_close(all);
    trainer_teardown(&t);
    return 0;
}
