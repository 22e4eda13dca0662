/* emu_fiber.cc: a block's threads as fibers on one OS thread (cuda_emu.h, "Model").
 *
 * Why fibers: one OS thread per CUDA thread cost ~13 ms per launch (thread creation and
 * kernel-mediated barriers); a user-space switch costs a few nanoseconds. On x86-64 the
 * switch is the hand-written one below (callee-saved registers and the stack pointer);
 * elsewhere, or with -DEMU_UCONTEXT, it is swapcontext, which also saves the signal mask
 * with a system call per switch (measured in docs/cuda.md).
 *
 * Scheduling: the scheduler switches to each runnable fiber in index order; a fiber runs
 * until it exits, reaches __syncthreads or a shuffle, and switches back. The arrival that
 * completes a barrier releases it. A pass in which no fiber could run while some have not
 * exited is a barrier that will never be released: it is reported and the process aborts. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "emu_internal.h"

#if !defined(__x86_64__) && !defined(EMU_UCONTEXT)
#define EMU_UCONTEXT
#endif
#ifdef EMU_UCONTEXT
#include <ucontext.h>
#endif

thread_local uint3 threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;

/* ---- context switch ---------------------------------------------------------------------- */

#ifdef EMU_UCONTEXT
typedef ucontext_t emu_ctx;
static void ctx_switch(emu_ctx *from, emu_ctx *to) { swapcontext(from, to); }
#else
/* the saved stack pointer; the registers live on the fiber's own stack */
struct emu_ctx {
    void *sp;
};
extern "C" void emu_switch(emu_ctx *from, emu_ctx *to);
extern "C" void emu_fiber_entry(void);
/* emu_switch: pushes the callee-saved registers, stores rsp in from, loads to's, pops its
 * registers and returns into it. emu_fiber_entry: a new fiber's first "return" lands here
 * with its function in r12 and argument in rbx (laid out by fiber_prepare). The x87 and
 * SSE control words are not switched: no kernel changes them. */
__asm__(".text\n"
        ".globl emu_switch\n"
        ".type emu_switch,@function\n"
        "emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq (%rsi), %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size emu_switch,.-emu_switch\n"
        ".globl emu_fiber_entry\n"
        ".type emu_fiber_entry,@function\n"
        "emu_fiber_entry:\n"
        "  movq %rbx, %rdi\n"
        "  call *%r12\n"
        "  ud2\n"
        ".size emu_fiber_entry,.-emu_fiber_entry\n"
        ".section .note.GNU-stack,\"\",@progbits\n"
        ".text\n");
static void ctx_switch(emu_ctx *from, emu_ctx *to) { emu_switch(from, to); }
#endif

/* ---- fibers and the running block ------------------------------------------------------------ */

enum fiber_state { RUNNABLE, AT_BARRIER, AT_SHUFFLE, EXITED };

struct fiber {
    emu_ctx ctx;
    uint3 tid;
    int state;
    const void *site;  /* the barrier it waits at (return address of __syncthreads) */
    int src;           /* shuffle: the lane it reads */
    uint64_t val, got; /* shuffle: what it offers, what it receives */
};

#define MAX_THREADS 1024
#define STACK_BYTES (128u << 10) /* per fiber; kernels keep little on the stack */

struct block_run {
    const char *name;
    emu_body body;
    void *ctx;
    int nt, live;
    int at_barrier;
    const void *barrier_site;
    bool barrier_mixed;
    int warp_arrived[MAX_THREADS / 32];
    int cur;
    emu_ctx sched;
    fiber f[MAX_THREADS];
    char *stacks; /* MAX_THREADS stacks, each above a guard page */
};

static block_run *g_run; /* the emulator runs one grid at a time (emu_lock) */

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* The stacks, once: a guard page under each turns a stack overflow into a fault. */
static block_run *run_state(void) {
    if (g_run) return g_run;
    block_run *r = (block_run *)calloc(1, sizeof *r);
    if (!r) emu_out_of_memory("the fiber table");
    size_t per = STACK_BYTES + page_size();
    void *m = mmap(NULL, per * MAX_THREADS, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) emu_out_of_memory("the fiber stacks");
    r->stacks = (char *)m;
    for (int i = 0; i < MAX_THREADS; i++)
        if (mprotect(r->stacks + per * i, page_size(), PROT_NONE))
            emu_die("mprotect of a fiber stack guard failed");
    g_run = r;
    return r;
}

static char *stack_top(block_run *r, int i) {
    return r->stacks + (STACK_BYTES + page_size()) * (size_t)(i + 1);
}

static void yield_to_scheduler(block_run *r) { ctx_switch(&r->f[r->cur].ctx, &r->sched); }

static void fiber_main(void *arg) {
    block_run *r = (block_run *)arg;
    r->body(r->ctx);
    r->f[r->cur].state = EXITED;
    r->live--;
    yield_to_scheduler(r);
    emu_die("kernel %s: an exited fiber was resumed", r->name); /* unreachable */
}

#ifdef EMU_UCONTEXT
static void fiber_trampoline(void) { fiber_main(g_run); }
static void fiber_prepare(block_run *r, int i) {
    ucontext_t *c = &r->f[i].ctx;
    if (getcontext(c)) emu_die("getcontext failed");
    c->uc_stack.ss_sp = stack_top(r, i) - STACK_BYTES;
    c->uc_stack.ss_size = STACK_BYTES;
    c->uc_link = NULL;
    makecontext(c, fiber_trampoline, 0);
}
#else
/* the frame emu_switch pops: r15 r14 r13 r12 rbx rbp, then the return address; the entry's
 * call then finds rsp 16-byte aligned, as the ABI wants */
static void fiber_prepare(block_run *r, int i) {
    void **sp = (void **)(stack_top(r, i) - 72);
    sp[0] = sp[1] = sp[2] = NULL;          /* r15 r14 r13 */
    sp[3] = (void *)&fiber_main;           /* r12: the function */
    sp[4] = (void *)r;                     /* rbx: its argument */
    sp[5] = NULL;                          /* rbp */
    sp[6] = (void *)&emu_fiber_entry;      /* where the first switch returns */
    r->f[i].ctx.sp = sp;
}
#endif

/* ---- barriers and shuffles ------------------------------------------------------------------ */

static block_run *running(const char *what) {
    block_run *r = g_run;
    if (!r || r->cur < 0) emu_die("%s called outside a kernel", what);
    return r;
}

__attribute__((noinline)) void __syncthreads(void) {
    block_run *r = running("__syncthreads");
    fiber *me = &r->f[r->cur];
    const void *site = __builtin_return_address(0);
    if (r->at_barrier == 0) r->barrier_site = site;
    else if (site != r->barrier_site) r->barrier_mixed = true;
    me->state = AT_BARRIER;
    me->site = site;
    if (++r->at_barrier == r->nt) {
        if (r->barrier_mixed)
            emu_die("kernel %s: block (%u,%u,%u): the threads reached different "
                    "__syncthreads calls (divergent barrier)",
                    r->name, blockIdx.x, blockIdx.y, blockIdx.z);
        for (int i = 0; i < r->nt; i++) r->f[i].state = RUNNABLE;
        r->at_barrier = 0;
        r->barrier_mixed = false;
        return; /* the last to arrive goes on at once */
    }
    yield_to_scheduler(r);
}

uint64_t emu_shfl_bits(unsigned mask, uint64_t v, int src) {
    block_run *r = running("a warp shuffle");
    if (mask != 0xffffffffu)
        emu_die("kernel %s: a shuffle with mask %#x: the emulator supports full warps only",
                r->name, mask);
    int me = r->cur, w = me / 32, base = w * 32;
    fiber *f = &r->f[me];
    f->state = AT_SHUFFLE;
    f->src = src;
    f->val = v;
    if (++r->warp_arrived[w] == 32) { /* every lane has offered its value */
        for (int l = 0; l < 32; l++) r->f[base + l].got = r->f[base + r->f[base + l].src].val;
        for (int l = 0; l < 32; l++) r->f[base + l].state = RUNNABLE;
        r->warp_arrived[w] = 0;
        return f->got;
    }
    yield_to_scheduler(r);
    return f->got;
}

/* ---- the scheduler ---------------------------------------------------------------------- */

[[noreturn]] static void report_stuck(block_run *r) {
    int bar = 0, shfl = 0, gone = 0;
    for (int i = 0; i < r->nt; i++) {
        bar += r->f[i].state == AT_BARRIER;
        shfl += r->f[i].state == AT_SHUFFLE;
        gone += r->f[i].state == EXITED;
    }
    emu_die("kernel %s: block (%u,%u,%u): divergent barrier: %d thread(s) wait at "
            "__syncthreads, %d at a warp shuffle, %d have exited (of %d); on a GPU this "
            "hangs or is undefined",
            r->name, blockIdx.x, blockIdx.y, blockIdx.z, bar, shfl, gone, r->nt);
}

static void run_block(block_run *r, uint3 bid) {
    blockIdx = bid;
    unsigned bx = blockDim.x, by = blockDim.y;
    for (int i = 0; i < r->nt; i++) {
        unsigned t = (unsigned)i;
        r->f[i].tid = uint3{t % bx, t / bx % by, t / (bx * by)};
        r->f[i].state = RUNNABLE;
        fiber_prepare(r, i);
    }
    r->live = r->nt;
    r->at_barrier = 0;
    r->barrier_mixed = false;
    for (int w = 0; w < r->nt / 32; w++) r->warp_arrived[w] = 0;
    while (r->live > 0) {
        bool ran = false;
        for (int i = 0; i < r->nt; i++) {
            if (r->f[i].state != RUNNABLE) continue;
            r->cur = i;
            threadIdx = r->f[i].tid;
            ctx_switch(&r->sched, &r->f[i].ctx);
            ran = true;
        }
        r->cur = -1;
        if (!ran) report_stuck(r);
    }
}

void emu_run_grid(const char *name, dim3 grid, dim3 block, emu_body body, void *ctx) {
    int nt = (int)(block.x * block.y * block.z);
    if (nt <= 0 || nt % 32 || nt > MAX_THREADS)
        emu_die("kernel %s: blocks must be 32 to 1024 threads, whole warps (got %ux%ux%u)",
                name, block.x, block.y, block.z);
    if (!grid.x || !grid.y || !grid.z || grid.x > 0x7fffffffu || grid.y > 65535u ||
        grid.z > 65535u)
        emu_die("kernel %s: grid %ux%ux%u outside CUDA's limits", name, grid.x, grid.y, grid.z);
    block_run *r = run_state();
    r->name = name;
    r->body = body;
    r->ctx = ctx;
    r->nt = nt;
    r->cur = -1;
    blockDim = block;
    gridDim = grid;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) run_block(r, uint3{x, y, z});
}
