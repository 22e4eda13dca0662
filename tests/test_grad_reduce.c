/* The gradient reducer's buckets: how the arena is cut, and when each bucket is launched as
 * the backward pass reports final gradients (the NCCL path's logic, here with a recording
 * stand-in for NCCL; the reductions themselves are tested on the emulator, gpu_emu_*). */
#include <criterion/criterion.h>
#include <stdio.h>

#include "grad_reduce.h"
#include "params.h"

/* five tensors of 100, 40, 16, 300 and 8 floats (arena padded to 16 floats each) */
static void five_tensors(model *m) {
    const int sizes[5] = {100, 40, 16, 300, 8};
    char name[8];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "t%d", i);
        model_add(m, name, 1, &sizes[i], 1);
    }
    model_alloc(m);
}

typedef struct {
    size_t from[16], n[16];
    int launched, joined;
    const float *base;
} recorder;

static void record_launch(void *arg, float *buf, size_t n) {
    recorder *r = arg;
    cr_assert_lt(r->launched, 16);
    r->from[r->launched] = (size_t)(buf - r->base);
    r->n[r->launched++] = n;
}
static void record_join(void *arg) { ((recorder *)arg)->joined++; }

Test(grad_reduce, plan_cuts_at_tensor_boundaries_from_the_end) {
    model m = {0};
    five_tensors(&m);
    /* offsets 0, 112, 160, 176, 480; arena 496 floats */
    cr_assert_eq(m.nfloats, 496);
    grad_bucket b[5];
    int n = grad_reduce_plan(&m, 150, b);
    /* t4 (16) + t3 (304) = 320 >= 150: cut at 176; t2+t1 = 64, + t0 = 176: the rest */
    cr_assert_eq(n, 2);
    cr_assert_eq(b[0].from, 176); cr_assert_eq(b[0].to, 496);
    cr_assert_eq(b[1].from, 0); cr_assert_eq(b[1].to, 176);
    /* tiny buckets: one per tensor; huge: one for the whole arena */
    cr_assert_eq(grad_reduce_plan(&m, 1, b), 5);
    for (int i = 0; i < 5; i++) cr_assert_eq(b[i].from, m.tensors[4 - i].offset);
    cr_assert_eq(grad_reduce_plan(&m, 1 << 20, b), 1);
    cr_assert_eq(b[0].from, 0); cr_assert_eq(b[0].to, 496);
    /* always an exact cover, whatever the size */
    for (size_t size = 1; size < 600; size += 7) {
        n = grad_reduce_plan(&m, size, b);
        size_t to = m.nfloats;
        for (int i = 0; i < n; i++) {
            cr_assert_eq(b[i].to, to, "bucket size %zu: bucket %d does not continue the last", size, i);
            cr_assert_gt(b[i].to, b[i].from);
            to = b[i].from;
        }
        cr_assert_eq(to, 0, "bucket size %zu: the buckets do not reach the start", size);
    }
    model_free(&m);
}

Test(grad_reduce, buckets_launch_as_the_backward_reports_them) {
    model m = {0};
    five_tensors(&m);
    recorder rec = {.base = m.grads};
    grad_reducer *r = grad_reduce_buckets(&m, 1, (grad_bucket_ops){record_launch, record_join, &rec});
    cr_assert_str_eq(grad_reduce_describe(r), "NCCL, 5 buckets of up to 0.0 MiB");
    for (int step = 0; step < 2; step++) {
        rec.launched = 0;
        /* an earlier micro-batch: the reports launch nothing (its gradients are not final) */
        model_grads_ready(&m, 3);
        cr_assert_eq(rec.launched, 0);
        grad_reduce_arm(r);
        model_grads_ready(&m, 3); /* t3 and t4 are final */
        cr_assert_eq(rec.launched, 2);
        cr_assert_eq(rec.from[0], 480); cr_assert_eq(rec.n[0], 16);
        cr_assert_eq(rec.from[1], 176); cr_assert_eq(rec.n[1], 304);
        model_grads_ready(&m, 4); /* does not move the boundary: nothing new */
        cr_assert_eq(rec.launched, 2);
        model_grads_ready(&m, 1);
        cr_assert_eq(rec.launched, 4);
        cr_assert_eq(rec.from[3], 112);
        cr_assert_eq(rec.joined, step);
        /* t0 was never reported: finish launches it, then joins */
        grad_reduce_finish(r);
        cr_assert_eq(rec.launched, 5);
        cr_assert_eq(rec.from[4], 0); cr_assert_eq(rec.n[4], 112);
        cr_assert_eq(rec.joined, step + 1);
        cr_assert_null(m.on_grads_ready, "finish must disarm");
    }
    /* a backward pass that reports nothing: everything at finish, in launch order */
    rec.launched = 0;
    grad_reduce_arm(r);
    grad_reduce_finish(r);
    cr_assert_eq(rec.launched, 5);
    for (int i = 0; i < 5; i++) cr_assert_eq(rec.from[i], m.tensors[4 - i].offset);
    grad_reduce_free(r);
    model_free(&m);
}
