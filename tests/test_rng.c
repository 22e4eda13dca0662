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
