/* cuda_emu.h: just enough of the CUDA language to compile kernels/cuda as C++ and run it on
 * the CPU (the runtime and cuBLAS are in cuda_emu_runtime.h). Not a simulator: no memory
 * model between blocks, no timing; it proves that the code computes the right numbers
 * when every thread of a block runs, uses only device memory, and meets its barriers.
 *
 * Model: the threads of a block run as fibers on the calling OS thread, switched in user
 * space (emu_fiber.cc); the blocks of a grid run one after the other, so a `__shared__`
 * variable becomes a function-local static, shared by exactly the threads of the running
 * block. threadIdx and blockIdx are set for each fiber as it is switched in.
 * __syncthreads releases when every thread of the block has arrived at the same barrier;
 * a warp shuffle when all 32 lanes have. A barrier that cannot be released (threads of
 * the block exited, or wait at a different barrier or shuffle) is reported with the
 * kernel's name and the process aborts, instead of hanging. Blocks must be whole warps,
 * shuffles full-warp (mask 0xffffffff). */
#ifndef DTRAIN_CUDA_EMU_H
#define DTRAIN_CUDA_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <new>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda_emu_runtime.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

/* the running fiber's indices, set by the scheduler as it switches the fiber in */
extern thread_local uint3 threadIdx, blockIdx;
extern thread_local dim3 blockDim, gridDim;

void __syncthreads(void);
uint64_t emu_shfl_bits(unsigned mask, uint64_t v, int src_lane);

template <class T> T emu_shfl(unsigned mask, T v, int src) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of at most 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = emu_shfl_bits(mask, b, src);
    T r;
    memcpy(&r, &b, sizeof r);
    return r;
}

template <class T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
    return emu_shfl(mask, v, (int)(threadIdx.x & 31) ^ lane_mask);
}

template <class T> T __shfl_sync(unsigned mask, T v, int src) {
    return emu_shfl(mask, v, src & 31);
}

/* one fiber runs at a time: a plain read-modify-write is atomic here */
static inline int atomicOr(int *p, int v) {
    int old = *p;
    *p = old | v;
    return old;
}
static inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* ---- launch ------------------------------------------------------------------------- */

typedef void (*emu_body)(void *ctx);
typedef void (*emu_destroy)(void *ctx);

/* Enqueues a launch on stream s; the emulator owns ctx from here and frees it with
 * destroy once the kernel has run. */
void emu_enqueue_kernel(const char *name, dim3 grid, dim3 block, cudaStream_t s,
                        emu_body body, void *ctx, emu_destroy destroy);
/* Aborts with the kernel's name when p is neither NULL nor inside a live device
 * allocation: a host pointer passed to a kernel faults on a GPU. */
void emu_check_kernel_pointer(const char *kernel, int arg, const void *p);
[[noreturn]] void emu_out_of_memory(const char *what);

template <class Tuple, class K> struct emu_call {
    K kernel;
    Tuple args;
    static void run(void *self) {
        emu_call *c = (emu_call *)self;
        Tuple copy = c->args; /* each thread gets its own parameters, as on the GPU */
        std::apply(c->kernel, copy);
    }
    static void destroy(void *self) { delete (emu_call *)self; }
};

template <class T> void emu_check_arg(const char *kernel, int i, const T &v) {
    if constexpr (std::is_pointer<T>::value) emu_check_kernel_pointer(kernel, i, (const void *)v);
    (void)kernel, (void)i, (void)v;
}

template <class Tuple, size_t... I>
void emu_check_args(const char *kernel, const Tuple &t, std::index_sequence<I...>) {
    (emu_check_arg(kernel, (int)I, std::get<I>(t)), ...);
}

template <class... P, class... A>
void emu_launch(const char *name, void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t s,
                A... args) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel argument count");
    typedef std::tuple<P...> Tuple;
    typedef emu_call<Tuple, void (*)(P...)> Call;
    Call *call = new (std::nothrow) Call{kernel, Tuple(static_cast<P>(args)...)};
    if (!call) emu_out_of_memory(name);
    emu_check_args(name, call->args, std::index_sequence_for<P...>{});
    emu_enqueue_kernel(name, grid, block, s, &Call::run, call, &Call::destroy);
}

#endif
