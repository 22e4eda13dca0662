/* test_kernels_backend.c: the CPU backend's memory and thread controls. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>

#include "kernels.h"

Test(backend, alloc_is_aligned_and_zeroed) {
    const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 1 << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        float *p = kernels_alloc(sizes[k]);
        cr_assert(p != NULL);
        cr_expect((uintptr_t)p % 64 == 0, "%zu floats: %p not 64-byte aligned", sizes[k],
                  (void *)p);
        int zero = 1;
        /* the whole rounded-up line is ours, and zeroed too */
        size_t n = (sizes[k] + 15) / 16 * 16;
        for (size_t i = 0; i < n; i++) zero &= p[i] == 0.0f;
        cr_expect(zero, "%zu floats not zeroed", sizes[k]);
        kernels_free(p);
    }
    kernels_free(NULL); /* like free() */
}

Test(backend, overflowing_alloc_aborts, .signal = SIGABRT) { kernels_alloc(SIZE_MAX / 2); }

Test(backend, failed_alloc_aborts, .signal = SIGABRT) {
    kernels_alloc((size_t)1 << 46); /* 256 TiB: more than the address space */
}

Test(backend, thread_count_round_trips) {
    cr_expect(kernels_get_threads() >= 1, "a default exists before any set");
    kernels_set_threads(3);
    cr_expect(kernels_get_threads() == 3);
    kernels_set_threads(1);
    cr_expect(kernels_get_threads() == 1);
    kernels_set_threads(0); /* < 1 selects the default */
    cr_expect(kernels_get_threads() >= 1);
}
