/* rng.h: xoshiro256** streams, the one generator of dtrain (core's streams and the
 * datasets' shuffles alike). Each rank derives its stream from (seed, stream id), so a run
 * is reproducible for a given seed and world size; the state is 32 bytes, saved in
 * checkpoints and restored on resume. base/ knows nothing else of ours, so every layer
 * above may use it. */
#ifndef DTRAIN_RNG_H
#define DTRAIN_RNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t s[4];
} rng;

/* SplitMix64: advances *x and returns its next output. The seed mixer under rng_seed,
 * public for streams derived from more than one key (datasets' (seed, epoch, rank)). */
uint64_t rng_splitmix64(uint64_t *x);

void rng_seed(rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_u64(rng *r);
/* uniform in [0, 1) with 24 random bits (exactly representable in float) */
float rng_uniform(rng *r);
/* uniform integer in [0, n) without modulo bias */
uint64_t rng_below(rng *r, uint64_t n);
/* standard normal (Box-Muller, one value per call) */
float rng_normal(rng *r);

#endif
