/* one_step: one training step of a job through the trainer's own path, on whichever device
 * the keys choose, its results dumped so that two runs (cpu, cuda) can be compared.
 *
 *   one_step JOB --dump FILE [--key value ...]    e.g. --device cuda --optimizer sgd
 *   one_step --compare A B TOL
 *
 * The step is the trainer's: the job's first epoch begun, gradients zeroed, the reducer
 * armed, the job's forward/backward on the first batch, then trainer_apply_gradients (the
 * reduction, the clip, the optimizer). Data and random draws come from the host, so both
 * devices see the same batch, noise and timesteps. FILE holds the rank-0 loss (one float),
 * the gradient arena after the reduction and the parameters after the optimizer step
 * (nfloats each), all copied out of backend memory with kernels_to_host.
 *
 * --compare reports each part's largest difference relative to the part's largest
 * magnitude (|a - b|_inf / |b|_inf) and fails when any is above TOL. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify/classify.h"
#include "diffusion/diffusion.h"
#include "gpt/gpt.h"
#include "grad_reduce.h"
#include "device.h"
#include "dump_file.h"
#include "kernels.h"
#include "trainer.h"
#include "util.h"

/* |a - b|_inf / |b|_inf over n floats (the absolute difference when b is all zeros) */
static double rel_inf(const float *a, const float *b, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= d)) d = e; /* NaN counts as the largest */
        if (fabs((double)b[i]) > m) m = fabs((double)b[i]);
    }
    return m > 0 ? d / m : d;
}

static int compare(const char *pa, const char *pb, double tol) {
    size_t na, nb;
    float *a = dump_read(pa, &na), *b = dump_read(pb, &nb);
    if (na != nb || na % 2 != 1) {
        printf("FAIL: %s holds %zu floats, %s %zu (expected 1 + 2 x nfloats each)\n", pa, na, pb, nb);
        return 1;
    }
    size_t n = (na - 1) / 2;
    double loss = rel_inf(a, b, 1), grads = rel_inf(a + 1, b + 1, n), params = rel_inf(a + 1 + n, b + 1 + n, n);
    printf("loss %.9g vs %.9g: rel %.3g | gradients (%zu floats): rel inf-norm %.3g | parameters after the step: "
           "rel %.3g | tolerance %.1g\n",
           a[0], b[0], loss, n, grads, params, tol);
    int ok = loss <= tol && grads <= tol && params <= tol;
    printf("%s\n", ok ? "OK" : "FAIL");
    free(a);
    free(b);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--compare") == 0) return compare(argv[2], argv[3], atof(argv[4]));
    static const job *const jobs[] = {&classify_job, &gpt_job, &diffusion_job};
    const job *j = NULL;
    for (size_t i = 0; argc > 1 && i < sizeof jobs / sizeof *jobs; i++)
        if (strcmp(argv[1], jobs[i]->name) == 0) j = jobs[i];
    const char *dump = take_arg(&argc, argv, "--dump");
    if (!j || !dump) DIE("usage: one_step classify|gpt|diffusion --dump FILE [--key value ...]");
    argc--, argv++; /* argv[0] = the job's name, as trainer_setup expects */

    trainer *t = xcalloc(1, sizeof *t);
    int rc = trainer_setup(t, j, argc, argv);
    if (rc != 0) return rc < 0 ? 0 : rc;
    t->epoch_steps = j->start_epoch(t->js, t, 0);
    model_zero_grads(&t->model);
    grad_reduce_arm(t->reducer);
    long items = 0;
    float loss = j->forward_backward(t->js, t, 0, 0, &items);
    trainer_apply_gradients(t);

    size_t n = t->model.nfloats;
    float *grads = xmalloc(n * sizeof *grads);
    kernels_to_host(grads, t->model.grads, n * sizeof *grads);
    model_download(&t->model);
    if (t->rank == 0) {
        FILE *f = fopen(dump, "wb");
        if (!f || fwrite(&loss, sizeof loss, 1, f) != 1 || fwrite(grads, sizeof *grads, n, f) != n ||
            fwrite(t->model.host, sizeof(float), n, f) != n || fclose(f) != 0)
            DIE("%s: cannot write", dump);
        printf("%s on %s: loss %.6f, %ld items, grad norm %.6f, %zu floats\n", j->name,
               kernels_device_name(), loss, items, t->grad_norm, n);
    }
    free(grads);
    trainer_teardown(t);
    free(t);
    return 0;
}
