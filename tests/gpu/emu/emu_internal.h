/* emu_internal.h: what the emulator's own files share (not for the code under test). */
#ifndef DTRAIN_EMU_INTERNAL_H
#define DTRAIN_EMU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <deque>
#include <mutex>
#include <vector>

#include "cuda_emu.h"

/* Prints "cuda_emu: <message>" and aborts: what a GPU reports as a fault (or a hang). */
[[noreturn]] void emu_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "cuda_emu: <message>" and goes on (a call that returns an error). */
void emu_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One lock for the whole emulated runtime, as the real one is thread-safe. Recursive:
 * an API call may progress streams, which may run NCCL work. */
std::recursive_mutex &emu_lock(void);

/* ---- device memory (emu_memory.cc) ----------------------------------------------------- */

/* a live device allocation containing [p, p+bytes), as {start, size}; {NULL, 0} if none */
struct emu_alloc {
    char *start;
    size_t size;
};
emu_alloc emu_find_alloc(const void *p);
bool emu_in_region(const void *p);
bool emu_device_range(const void *p, size_t bytes);
bool emu_is_pinned(const void *p);
void *emu_device_malloc(size_t bytes);
bool emu_device_free(void *p);
/* Device memory is readable and writable between open and close (nested), PROT_NONE
 * otherwise. Every emulated operation runs inside such a pair. */
void emu_open(void);
void emu_close(void);
struct emu_access {
    emu_access() { emu_open(); }
    ~emu_access() { emu_close(); }
    emu_access(const emu_access &) = delete;
    emu_access &operator=(const emu_access &) = delete;
};

/* ---- fibers (emu_fiber.cc) ------------------------------------------------------------- */

/* Runs every block of the grid, each block's threads as fibers; aborts on a divergent
 * barrier, naming the kernel. */
void emu_run_grid(const char *name, dim3 grid, dim3 block, emu_body body, void *ctx);

/* ---- streams (emu_stream.cc) ----------------------------------------------------------- */

struct emu_stream;

/* One operation in a stream. step() runs it (or advances it, for a collective) and says
 * whether it has finished; it is called only once everything it depends on has. */
struct emu_op {
    virtual ~emu_op() {}
    virtual bool step() = 0;
    struct dep {
        emu_stream *s;
        uint64_t pos;
    };
    std::vector<dep> deps;
};

struct emu_stream {
    std::deque<emu_op *> q;
    uint64_t enqueued = 0, done = 0; /* operations ever enqueued / finished */
    bool blocking = true;            /* orders with the legacy default stream */
    bool legacy = false;             /* the NULL stream */
    bool held = false;               /* emu_stream_hold */
    bool destroyed = false;
};

/* the stream an API handle means (NULL: the legacy default stream) */
emu_stream *emu_stream_of(cudaStream_t s);
/* Takes ownership of op and appends it to s, with the implicit legacy-stream ordering. */
void emu_enqueue(cudaStream_t s, emu_op *op);
/* Runs every operation whose dependencies are met; returns whether any finished. */
bool emu_progress(void);
/* Progresses until s has nothing pending (forever if it never drains, as a GPU would). */
void emu_drain(emu_stream *s);
/* Sleeps a little between two polls of something pending. */
void emu_pause(void);

#endif
