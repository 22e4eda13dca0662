/* ema.c: the moving average of the weights (diffusion's EMA), one pass, elementwise. */
#include "cpu.h"
#include "kernels.h"

#define EMA_GRAIN 65536.0

void ema_update(float *ema, const float *x, size_t n, float decay) {
    int nt = kc_threads_for((double)n, EMA_GRAIN);
    (void)nt; /* only read by the pragma */
    const float keep = decay, take = 1.0f - decay;
    KC_OMP(omp parallel num_threads(nt))
    {
        size_t lo, hi;
        kc_split16(n, KC_NT(), KC_TID(), &lo, &hi);
        for (size_t i = lo; i < hi; i++) ema[i] = keep * ema[i] + take * x[i];
    }
}
