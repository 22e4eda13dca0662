/* test_activations.c: core/activations: layout, views, the gradient twin, scratch, errors. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "activations.h"

typedef struct net {
    activations mem;
    float *a, *b, *c, *d; /* a [3,5] with grad, b [7] without, c [2,2,4] with, d [1] without */
    int32_t *ids;         /* [9] */
} net;

static void declare(net *n, int scale) {
    acts_add(&n->mem, &n->a, "a", 2, (int[]){3 * scale, 5}, 1);
    acts_add(&n->mem, &n->b, "b", 1, (int[]){7 * scale}, 0);
    acts_add_i32(&n->mem, &n->ids, "ids", 1, (int[]){9});
    acts_add(&n->mem, &n->c, "c", 3, (int[]){2, 2, 4 * scale}, 1);
    acts_add(&n->mem, &n->d, "d", 1, (int[]){1}, 0);
    acts_scratch(&n->mem, 40);
    acts_scratch(&n->mem, 100 * (size_t)scale); /* the largest request wins */
    acts_scratch(&n->mem, 3);
}

static size_t off(const net *n, const void *p) { return (size_t)((const float *)p - n->mem.arena); }

Test(activations, gradient_tensors_first_then_the_rest_then_scratch) {
    net n = {0};
    declare(&n, 1);
    acts_alloc(&n.mem, 1);
    /* with a gradient, in declaration order, each on a 16-float line */
    cr_expect_eq(off(&n, n.a), 0);
    cr_expect_eq(off(&n, n.c), 16);
    cr_expect_eq(n.mem.grad_floats, 32);
    /* then those without, in declaration order (int32 ones among them) */
    cr_expect_eq(off(&n, n.b), 32);
    cr_expect_eq(off(&n, n.ids), 48);
    cr_expect_eq(off(&n, n.d), 64);
    cr_expect_eq(off(&n, n.mem.scratch), 80);
    cr_expect_eq(n.mem.scratch_floats, 100);
    cr_expect_eq(n.mem.nfloats, 80 + 112);
    cr_expect((uintptr_t)n.mem.arena % 64 == 0);
    int zero = 1;
    for (size_t i = 0; i < n.mem.nfloats; i++) zero &= n.mem.arena[i] == 0.0f;
    for (size_t i = 0; i < n.mem.grad_floats; i++) zero &= n.mem.grads[i] == 0.0f;
    cr_expect(zero, "the arenas start zeroed");
    int i = acts_find(&n.mem, "c");
    cr_assert_geq(i, 0);
    cr_expect_eq(n.mem.t[i].numel, 16);
    cr_expect_eq(n.mem.t[i].shape[2], 4);
    cr_expect_eq(acts_find(&n.mem, "nope"), -1);
    acts_free(&n.mem);
}

Test(activations, the_gradient_sits_at_the_same_offset_in_the_twin) {
    net n = {0};
    declare(&n, 1);
    acts_alloc(&n.mem, 1);
    cr_expect_eq(acts_grad(&n.mem, n.a), n.mem.grads);
    cr_expect_eq(acts_grad(&n.mem, n.c), n.mem.grads + 16);
    cr_expect_eq(acts_grad(&n.mem, n.c + 5), n.mem.grads + 21); /* inside a tensor */
    for (size_t i = 0; i < n.mem.grad_floats; i++) n.mem.grads[i] = 1.0f;
    n.a[0] = 2.0f;
    acts_zero_grads(&n.mem);
    int zero = 1;
    for (size_t i = 0; i < n.mem.grad_floats; i++) zero &= n.mem.grads[i] == 0.0f;
    cr_expect(zero);
    cr_expect_eq(n.a[0], 2.0f, "zeroing the gradients leaves the activations");
    acts_free(&n.mem);
}

Test(activations, declared_again_for_a_larger_batch) {
    net n = {0};
    declare(&n, 1);
    acts_alloc(&n.mem, 0);
    cr_expect_null(n.mem.grads);
    acts_free(&n.mem);
    cr_expect_eq(n.mem.n, 0);
    declare(&n, 4);
    acts_alloc(&n.mem, 1);
    cr_expect_eq(n.mem.grad_floats, 64 + 64); /* a: 60 floats -> 64; c: 64 */
    cr_expect_eq(off(&n, n.b), 128);
    cr_expect_eq(n.mem.scratch_floats, 400);
    acts_free(&n.mem);
}

/* every misuse is a one-line error and exit 1, not a wrong pointer */
Test(activations, no_gradient_for_a_tensor_declared_without, .exit_code = 1) {
    net n = {0};
    declare(&n, 1);
    acts_alloc(&n.mem, 1);
    acts_grad(&n.mem, n.b);
}

Test(activations, no_gradient_without_a_twin, .exit_code = 1) {
    net n = {0};
    declare(&n, 1);
    acts_alloc(&n.mem, 0);
    acts_grad(&n.mem, n.a);
}

Test(activations, no_gradient_outside_the_arena, .exit_code = 1) {
    net n = {0};
    float x[4];
    declare(&n, 1);
    acts_alloc(&n.mem, 1);
    acts_grad(&n.mem, x);
}

Test(activations, declaring_after_alloc_dies, .exit_code = 1) {
    net n = {0};
    declare(&n, 1);
    acts_alloc(&n.mem, 1);
    float *late;
    acts_add(&n.mem, &late, "late", 1, (int[]){4}, 0);
}

Test(activations, a_name_declared_twice_dies, .exit_code = 1) {
    net n = {0};
    acts_add(&n.mem, &n.a, "a", 1, (int[]){4}, 0);
    acts_add(&n.mem, &n.b, "a", 1, (int[]){4}, 0);
}

Test(activations, a_bad_dimension_dies, .exit_code = 1) {
    net n = {0};
    acts_add(&n.mem, &n.a, "a", 2, (int[]){4, 0}, 0);
}
