/* RNG streams: reproducible, independent per (seed, stream), sane distributions. */
#include <criterion/criterion.h>
#include <math.h>

#include "rng.h"

Test(rng, same_seed_same_stream) {
    rng a, b;
    rng_seed(&a, 42, 3);
    rng_seed(&b, 42, 3);
    for (int i = 0; i < 1000; i++) cr_assert_eq(rng_u64(&a), rng_u64(&b));
}

Test(rng, streams_differ) {
    rng a, b, c;
    rng_seed(&a, 42, 0);
    rng_seed(&b, 42, 1);
    rng_seed(&c, 43, 0);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rng_u64(&a);
        same_ab += x == rng_u64(&b);
        same_ac += x == rng_u64(&c);
    }
    cr_expect_eq(same_ab, 0);
    cr_expect_eq(same_ac, 0);
}

Test(rng, distributions) {
    rng r;
    rng_seed(&r, 7, 0);
    double sum = 0, sq = 0, usum = 0;
    const int n = 200000;
    int below_counts[5] = {0};
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&r);
        cr_assert(u >= 0.0f && u < 1.0f);
        usum += u;
        below_counts[rng_below(&r, 5)]++;
        double z = rng_normal(&r);
        sum += z;
        sq += z * z;
    }
    /* 5 standard errors: fails by chance far less than once in a million runs */
    cr_expect(fabs(usum / n - 0.5) < 5 * sqrt(1.0 / 12 / n));
    cr_expect(fabs(sum / n) < 5 / sqrt(n));
    cr_expect(fabs(sq / n - 1.0) < 5 * sqrt(2.0 / n));
    for (int k = 0; k < 5; k++) cr_expect(abs(below_counts[k] - n / 5) < 5 * sqrt(n * 0.16));
}

/* Every stream is part of a run's reproducibility (initialisation, dropout-free sampling,
 * timesteps, noise) and of resuming an old checkpoint: a few values of each kind, pinned. */
Test(rng, streams_are_pinned) {
    rng r;
    rng_seed(&r, 42, 3);
    const uint64_t want_u64[3] = {0x0bfe42b8a9ec4b51ull, 0xba65c2eb693d9477ull, 0xf2bcc7f05a38011bull};
    for (int i = 0; i < 3; i++) cr_expect_eq(rng_u64(&r), want_u64[i], "rng_u64 #%d", i);
    rng_seed(&r, 0, 0);
    const float want_uniform[3] = {0x1.44d52p-2f, 0x1.c7398ep-1f, 0x1.32d6f2p-1f};
    for (int i = 0; i < 3; i++) cr_expect_eq(rng_uniform(&r), want_uniform[i], "rng_uniform #%d", i);
    const uint64_t want_below[3] = {511, 724, 287};
    for (int i = 0; i < 3; i++) cr_expect_eq(rng_below(&r, 1000), want_below[i], "rng_below #%d", i);
    const float want_normal[3] = {0x1.3c7df2p-2f, 0x1.4ed3fcp+0f, -0x1.2d6eb2p-7f};
    for (int i = 0; i < 3; i++) cr_expect_eq(rng_normal(&r), want_normal[i], "rng_normal #%d", i);
}

/* The SplitMix64 mixer's reference values (seed 0), which rng_seed and the datasets'
 * shuffles are built on. */
Test(rng, splitmix64_reference) {
    uint64_t x = 0;
    cr_expect_eq(rng_splitmix64(&x), 0xe220a8397b1dcdafull);
    cr_expect_eq(rng_splitmix64(&x), 0x6e789e6aa1b965f4ull);
    cr_expect_eq(rng_splitmix64(&x), 0x06c45d188009454full);
}
