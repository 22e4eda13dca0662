/* emu_stream.cc: streams, events, copies, memsets, kernel launches and the device calls.
 *
 * A stream is a queue of operations; an operation runs once everything it depends on has
 * finished: the operation before it in its stream, the event positions a
 * cudaStreamWaitEvent names, and the implicit order between the legacy default stream
 * (NULL) and the blocking streams. An event is a position in a stream (what had been
 * enqueued when it was recorded); it has happened when the stream got that far. Work runs
 * on the calling thread at the moment it becomes ready, which is usually when it is
 * enqueued; a collective of the NCCL stand-in (emu_nccl.cc), or a held stream, keeps
 * later work pending, exactly where a GPU would keep it waiting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vector>

#include "emu_internal.h"

#define DEFAULT_GPUS 8

static emu_stream g_legacy_stream = [] {
    emu_stream s;
    s.legacy = true;
    return s;
}();
/* Never destroyed, as the streams it holds live as long as the process (events recorded on a
 * destroyed stream may still be queried): a vector destroyed at exit would leave them
 * unreachable, which LeakSanitizer (scripts/sanitize.sh) rightly calls a leak. */
static std::vector<emu_stream *> &g_streams = *new std::vector<emu_stream *>{&g_legacy_stream};
static int g_device;
static cudaError_t g_last_error; /* sticky until cudaGetLastError, per process */
static uint64_t g_launches;

typedef std::lock_guard<std::recursive_mutex> guard;

static cudaError_t fail(cudaError_t e) {
    g_last_error = e;
    return e;
}

void emu_pause(void) {
    struct timespec t = {0, 20000};
    nanosleep(&t, NULL);
}

emu_stream *emu_stream_of(cudaStream_t s) { return s ? (emu_stream *)s : &g_legacy_stream; }

static bool ready(const emu_op *op) {
    for (const emu_op::dep &d : op->deps)
        if (d.s->done < d.pos) return false;
    return true;
}

bool emu_progress(void) {
    guard lk(emu_lock());
    bool any = false, moved = true;
    while (moved) {
        moved = false;
        for (emu_stream *s : g_streams)
            while (!s->q.empty() && !s->held && ready(s->q.front()) && s->q.front()->step()) {
                delete s->q.front();
                s->q.pop_front();
                s->done++;
                moved = any = true;
            }
    }
    return any;
}

void emu_enqueue(cudaStream_t handle, emu_op *op) {
    guard lk(emu_lock());
    emu_stream *s = emu_stream_of(handle);
    /* the legacy stream waits for all blocking streams, and they wait for it */
    if (s->legacy) {
        for (emu_stream *b : g_streams)
            if (b->blocking && !b->legacy && b->done < b->enqueued)
                op->deps.push_back({b, b->enqueued});
    } else if (s->blocking && g_legacy_stream.done < g_legacy_stream.enqueued) {
        op->deps.push_back({&g_legacy_stream, g_legacy_stream.enqueued});
    }
    s->q.push_back(op);
    s->enqueued++;
    emu_progress();
}

void emu_drain(emu_stream *s) {
    guard lk(emu_lock());
    for (;;) {
        emu_progress();
        if (s->q.empty()) return;
        emu_pause();
    }
}

/* ---- operations ---------------------------------------------------------------------------- */

namespace {
struct kernel_op : emu_op {
    const char *name;
    dim3 grid, block;
    emu_body body;
    void *ctx;
    emu_destroy destroy;
    bool step() override {
        emu_access open;
        emu_run_grid(name, grid, block, body, ctx);
        return true;
    }
    ~kernel_op() override { destroy(ctx); }
};

/* DTRAIN_EMU_TRACE=file: one line "bytes fnv1a-hash" per copy from device to host, to
 * show that two emulator versions (or two runs) compute bit-identical results */
void trace_to_host(const void *src, size_t bytes) {
    static const char *path = getenv("DTRAIN_EMU_TRACE");
    if (!path || !*path) return;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < bytes; i++) h = (h ^ ((const unsigned char *)src)[i]) * 1099511628211ull;
    FILE *f = fopen(path, "a");
    if (!f) emu_die("DTRAIN_EMU_TRACE=%s: cannot open it for appending", path);
    fprintf(f, "%zu %016llx\n", bytes, (unsigned long long)h);
    fclose(f);
}

/* a copy; `owned` holds a snapshot of a pageable source, taken when it was enqueued */
struct copy_op : emu_op {
    void *dst;
    const void *src;
    size_t bytes;
    std::vector<char> owned;
    bool step() override {
        emu_access open;
        memmove(dst, owned.empty() ? src : owned.data(), bytes);
        if (emu_in_region(src) && !emu_in_region(dst)) trace_to_host(dst, bytes);
        return true;
    }
};

struct memset_op : emu_op {
    void *dst;
    int value;
    size_t bytes;
    bool step() override {
        emu_access open;
        memset(dst, value, bytes);
        return true;
    }
};

/* nothing to do: a point in a stream (an event record) or a wait (its deps) */
struct marker_op : emu_op {
    bool step() override { return true; }
};
} // namespace

void emu_check_kernel_pointer(const char *kernel, int arg, const void *p) {
    guard lk(emu_lock());
    if (!p || emu_find_alloc(p).start) return;
    if (emu_in_region(p))
        emu_die("kernel %s: argument %d (%p) points into device memory that is not allocated "
                "(freed, or past the end of an allocation)",
                kernel, arg, p);
    emu_die("kernel %s: argument %d (%p) is a host pointer; a kernel can only use device "
            "memory (on a GPU this is an illegal address)",
            kernel, arg, p);
}

void emu_enqueue_kernel(const char *name, dim3 grid, dim3 block, cudaStream_t s, emu_body body,
                        void *ctx, emu_destroy destroy) {
    guard lk(emu_lock());
    kernel_op *op = new (std::nothrow) kernel_op;
    if (!op) {
        destroy(ctx);
        emu_out_of_memory(name);
    }
    op->name = name;
    op->grid = grid;
    op->block = block;
    op->body = body;
    op->ctx = ctx;
    op->destroy = destroy;
    g_launches++;
    emu_enqueue(s, op);
}

extern "C" uint64_t emu_launch_count(void) { return g_launches; }

/* ---- copies: the kind must say where the pointers really are ------------------------------- */

static const char *kind_name(cudaMemcpyKind k) {
    static const char *names[] = {"cudaMemcpyHostToHost", "cudaMemcpyHostToDevice",
                                  "cudaMemcpyDeviceToHost", "cudaMemcpyDeviceToDevice",
                                  "cudaMemcpyDefault"};
    return (unsigned)k <= 4 ? names[k] : "an unknown kind";
}

/* checks one side; `device` says which side the kind claims it is */
static bool side_ok(const char *call, const char *side, const void *p, size_t bytes,
                    bool device, cudaMemcpyKind k) {
    bool in = emu_in_region(p);
    if (device && !in) {
        emu_warn("%s: %s %p is host memory, but the kind is %s", call, side, p, kind_name(k));
        return false;
    }
    if (!device && in) {
        emu_warn("%s: %s %p is device memory, but the kind is %s", call, side, p, kind_name(k));
        return false;
    }
    if (device && !emu_device_range(p, bytes)) {
        emu_warn("%s: %s %p + %zu bytes is not inside one live device allocation", call, side,
                 p, bytes);
        return false;
    }
    return true;
}

static cudaError_t check_copy(const char *call, void *dst, const void *src, size_t bytes,
                              cudaMemcpyKind k) {
    if ((unsigned)k > 4) {
        emu_warn("%s: memcpy kind %d is not one of cudaMemcpyKind", call, (int)k);
        return cudaErrorInvalidValue;
    }
    if (bytes && (!dst || !src)) return cudaErrorInvalidValue;
    bool dst_dev = k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice;
    bool src_dev = k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice;
    if (k == cudaMemcpyDefault) { /* unified addressing: where they are decides */
        dst_dev = emu_in_region(dst);
        src_dev = emu_in_region(src);
    }
    if (!side_ok(call, "dst", dst, bytes, dst_dev, k) ||
        !side_ok(call, "src", src, bytes, src_dev, k))
        return cudaErrorInvalidValue;
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes,
                                       cudaMemcpyKind k, cudaStream_t s) {
    guard lk(emu_lock());
    cudaError_t e = check_copy("cudaMemcpyAsync", dst, src, bytes, k);
    if (e != cudaSuccess) return fail(e);
    if (!bytes) return cudaSuccess;
    copy_op *op = new (std::nothrow) copy_op;
    if (!op) return fail(cudaErrorMemoryAllocation);
    op->dst = dst;
    op->src = src;
    op->bytes = bytes;
    bool src_pageable = !emu_in_region(src) && !emu_is_pinned(src);
    bool dst_pageable = !emu_in_region(dst) && !emu_is_pinned(dst);
    /* pageable memory: the runtime stages the source before returning, and a copy into
     * pageable memory returns only when done */
    if (src_pageable) op->owned.assign((const char *)src, (const char *)src + bytes);
    emu_enqueue(s, op);
    if (dst_pageable) emu_drain(emu_stream_of(s));
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind k) {
    guard lk(emu_lock());
    cudaError_t e = check_copy("cudaMemcpy", dst, src, bytes, k);
    if (e != cudaSuccess) return fail(e);
    e = cudaMemcpyAsync(dst, src, bytes, k, NULL);
    if (e == cudaSuccess) emu_drain(&g_legacy_stream);
    return e;
}

extern "C" cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s) {
    guard lk(emu_lock());
    if (!bytes) return cudaSuccess;
    if (!emu_device_range(p, bytes)) {
        emu_warn("cudaMemsetAsync: %p + %zu bytes is not inside one live device allocation", p,
                 bytes);
        return fail(cudaErrorInvalidValue);
    }
    memset_op *op = new (std::nothrow) memset_op;
    if (!op) return fail(cudaErrorMemoryAllocation);
    op->dst = p;
    op->value = v;
    op->bytes = bytes;
    emu_enqueue(s, op);
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemset(void *p, int v, size_t bytes) {
    guard lk(emu_lock());
    cudaError_t e = cudaMemsetAsync(p, v, bytes, NULL);
    if (e == cudaSuccess) emu_drain(&g_legacy_stream);
    return e;
}

/* ---- streams ------------------------------------------------------------------------------ */

extern "C" cudaError_t cudaStreamCreateWithFlags(cudaStream_t *out, unsigned flags) {
    guard lk(emu_lock());
    if (!out) return fail(cudaErrorInvalidValue);
    emu_stream *s = new (std::nothrow) emu_stream;
    if (!s) return fail(cudaErrorMemoryAllocation);
    s->blocking = !(flags & cudaStreamNonBlocking);
    g_streams.push_back(s);
    *out = (cudaStream_t)s;
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamCreate(cudaStream_t *out) {
    return cudaStreamCreateWithFlags(out, cudaStreamDefault);
}

/* The object stays: events recorded on it may still be queried. Its pending work still
 * runs, as on a GPU. */
extern "C" cudaError_t cudaStreamDestroy(cudaStream_t s) {
    guard lk(emu_lock());
    if (!s || emu_stream_of(s)->destroyed) return fail(cudaErrorInvalidResourceHandle);
    emu_stream_of(s)->destroyed = true;
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    guard lk(emu_lock());
    emu_drain(emu_stream_of(s));
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamQuery(cudaStream_t s) {
    guard lk(emu_lock());
    emu_progress();
    return emu_stream_of(s)->q.empty() ? cudaSuccess : cudaErrorNotReady;
}

extern "C" cudaError_t cudaDeviceSynchronize(void) {
    guard lk(emu_lock());
    for (size_t i = 0; i < g_streams.size(); i++) emu_drain(g_streams[i]);
    return cudaSuccess;
}

extern "C" void emu_stream_hold(cudaStream_t s, int hold) {
    guard lk(emu_lock());
    emu_stream_of(s)->held = hold != 0;
    if (!hold) emu_progress();
}

/* ---- events ---------------------------------------------------------------------------------- */

struct emu_event {
    emu_stream *s = nullptr; /* NULL until recorded: then it counts as happened */
    uint64_t pos = 0;
};

extern "C" cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    (void)flags;
    guard lk(emu_lock());
    if (!e) return fail(cudaErrorInvalidValue);
    *e = new (std::nothrow) emu_event;
    return *e ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

extern "C" cudaError_t cudaEventCreate(cudaEvent_t *e) {
    return cudaEventCreateWithFlags(e, cudaEventDefault);
}

extern "C" cudaError_t cudaEventDestroy(cudaEvent_t e) {
    guard lk(emu_lock());
    if (!e) return fail(cudaErrorInvalidResourceHandle);
    delete e;
    return cudaSuccess;
}

/* a marker op, so that recording on the legacy stream also covers the blocking streams */
extern "C" cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    guard lk(emu_lock());
    if (!e) return fail(cudaErrorInvalidResourceHandle);
    marker_op *op = new (std::nothrow) marker_op;
    if (!op) return fail(cudaErrorMemoryAllocation);
    emu_stream *st = emu_stream_of(s);
    e->s = st;
    e->pos = st->enqueued + 1;
    emu_enqueue(s, op);
    return cudaSuccess;
}

static bool happened(const emu_event *e) { return !e->s || e->s->done >= e->pos; }

extern "C" cudaError_t cudaEventQuery(cudaEvent_t e) {
    guard lk(emu_lock());
    if (!e) return fail(cudaErrorInvalidResourceHandle);
    emu_progress();
    return happened(e) ? cudaSuccess : cudaErrorNotReady;
}

extern "C" cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    guard lk(emu_lock());
    if (!e) return fail(cudaErrorInvalidResourceHandle);
    for (;;) {
        emu_progress();
        if (happened(e)) return cudaSuccess;
        emu_pause();
    }
}

/* the wait takes the event's position now: a later record does not move it */
extern "C" cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags) {
    (void)flags;
    guard lk(emu_lock());
    if (!e) return fail(cudaErrorInvalidResourceHandle);
    marker_op *op = new (std::nothrow) marker_op;
    if (!op) return fail(cudaErrorMemoryAllocation);
    if (e->s) op->deps.push_back({e->s, e->pos});
    emu_enqueue(s, op);
    return cudaSuccess;
}

/* ---- devices and errors ------------------------------------------------------------------- */

static int gpu_count(void) {
    const char *s = getenv("DTRAIN_EMU_GPUS");
    if (!s || !*s) return DEFAULT_GPUS;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 1024) emu_die("DTRAIN_EMU_GPUS='%s': expected 0 to 1024", s);
    return (int)v;
}

extern "C" cudaError_t cudaGetDeviceCount(int *n) {
    if (!n) return fail(cudaErrorInvalidValue);
    *n = gpu_count();
    return cudaSuccess;
}

extern "C" cudaError_t cudaSetDevice(int dev) {
    guard lk(emu_lock());
    if (dev < 0 || dev >= gpu_count()) return fail(cudaErrorInvalidDevice);
    g_device = dev;
    return cudaSuccess;
}

extern "C" cudaError_t cudaGetDevice(int *dev) {
    guard lk(emu_lock());
    if (!dev) return fail(cudaErrorInvalidValue);
    *dev = g_device;
    return cudaSuccess;
}

extern "C" cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int dev) {
    if (!prop) return fail(cudaErrorInvalidValue);
    if (dev < 0 || dev >= gpu_count()) return fail(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "dtrain CUDA emulator");
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    prop->totalGlobalMem = total_b;
    prop->major = 9; /* what the kernels are built for by default: sm_90 */
    prop->multiProcessorCount = 1;
    return cudaSuccess;
}

extern "C" cudaError_t cudaDriverGetVersion(int *v) {
    if (!v) return fail(cudaErrorInvalidValue);
    *v = CUDART_VERSION;
    return cudaSuccess;
}

extern "C" cudaError_t cudaRuntimeGetVersion(int *v) { return cudaDriverGetVersion(v); }

extern "C" cudaError_t cudaGetLastError(void) {
    guard lk(emu_lock());
    cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}

extern "C" cudaError_t cudaPeekAtLastError(void) {
    guard lk(emu_lock());
    return g_last_error;
}

extern "C" const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument (emulated)";
    case cudaErrorMemoryAllocation: return "out of memory (emulated)";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient (emulated)";
    case cudaErrorInvalidDevice: return "invalid device ordinal (emulated)";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle (emulated)";
    case cudaErrorNotReady: return "device not ready (emulated)";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered (emulated)";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulated)";
    }
    return "unknown error (emulated)";
}
