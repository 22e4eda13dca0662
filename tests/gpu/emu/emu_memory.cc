/* emu_memory.cc: device memory that host code cannot touch, and pinned host memory.
 *
 * Device allocations come from one reserved region (DTRAIN_EMU_DEVICE_MIB, default 16 GiB
 * of address space, MAP_NORESERVE: only what is used costs memory). The region is
 * inaccessible except while an emulated operation runs (emu_open/emu_close), so a host
 * read or write of device memory is a SIGSEGV here, as it is a fault on a GPU.
 *
 * Two ways to switch access, chosen at start:
 * - a memory protection key (x86 PKU, `pkey_alloc`): the region is tagged with its own
 *   key and access is switched by writing this thread's PKRU register, ~20 ns. Other
 *   threads keep the key's access disabled, so they fault too;
 * - mprotect, where the CPU or kernel has no protection keys (or DTRAIN_EMU_NO_PKEYS=1):
 *   PROT_NONE <-> read/write over the part below the high-water mark. Correct, but each
 *   switch rewrites the page table entries of all used pages: about 1 ms per launch with
 *   8 MiB in use (docs/cuda.md).
 * First-fit allocation in 256-byte units (cudaMalloc's alignment), freed ranges merged. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>

#include "emu_internal.h"

#define ALIGN 256u
#define DEFAULT_MIB ((size_t)16 << 10)

namespace {
struct region {
    char *base = nullptr;
    size_t size = 0;
    int pkey = -1;         /* the region's protection key, or -1: mprotect */
    size_t high = 0;       /* bytes below the highest allocation end ever */
    size_t open_len = 0;   /* bytes made accessible by the outermost emu_open */
    int depth = 0;
    std::map<size_t, size_t> free_; /* offset -> length */
    std::map<size_t, size_t> live;  /* offset -> length as asked */
    std::map<uintptr_t, size_t> pinned_len; /* cudaMallocHost: start -> length */
};
} // namespace

static region g_mem;

void emu_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("cuda_emu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    abort();
}

void emu_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("cuda_emu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void emu_out_of_memory(const char *what) { emu_die("out of host memory for %s", what); }

std::recursive_mutex &emu_lock(void) {
    static std::recursive_mutex m;
    return m;
}

static size_t region_mib(void) {
    const char *s = getenv("DTRAIN_EMU_DEVICE_MIB");
    if (!s || !*s) return DEFAULT_MIB;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v == 0 || v > ((size_t)1 << 30))
        emu_die("DTRAIN_EMU_DEVICE_MIB='%s': expected a number of MiB > 0", s);
    return (size_t)v;
}

static region &mem(void) {
    if (g_mem.base) return g_mem;
    size_t size = region_mib() << 20;
    void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        emu_die("reserving %zu MiB of address space for device memory failed: %s "
                "(set DTRAIN_EMU_DEVICE_MIB lower)",
                size >> 20, strerror(errno));
    g_mem.base = (char *)p;
    g_mem.size = size;
    g_mem.free_[0] = size;
    const char *no = getenv("DTRAIN_EMU_NO_PKEYS");
    if (!(no && *no && strcmp(no, "0"))) {
        int key = pkey_alloc(0, PKEY_DISABLE_ACCESS);
        if (key >= 0 && pkey_mprotect(p, size, PROT_READ | PROT_WRITE, key) == 0) g_mem.pkey = key;
        else if (key >= 0) pkey_free(key);
    }
    return g_mem;
}

static size_t page_round(size_t n) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}

static void protect(region &m, size_t len, int prot) {
    if (len && mprotect(m.base, len, prot))
        emu_die("mprotect of device memory failed: %s", strerror(errno));
}

void emu_open(void) {
    region &m = mem();
    if (m.depth++ > 0) return;
    if (m.pkey >= 0) {
        pkey_set(m.pkey, 0);
        return;
    }
    m.open_len = page_round(m.high);
    protect(m, m.open_len, PROT_READ | PROT_WRITE);
}

void emu_close(void) {
    region &m = mem();
    if (--m.depth > 0) return;
    if (m.pkey >= 0) {
        pkey_set(m.pkey, PKEY_DISABLE_ACCESS);
        return;
    }
    protect(m, m.open_len, PROT_NONE);
    m.open_len = 0;
}

extern "C" const char *emu_protection(void) {
    return mem().pkey >= 0 ? "protection key" : "mprotect";
}

bool emu_in_region(const void *p) {
    region &m = mem();
    return (const char *)p >= m.base && (const char *)p < m.base + m.size;
}

emu_alloc emu_find_alloc(const void *p) {
    region &m = mem();
    if (!emu_in_region(p)) return {nullptr, 0};
    size_t off = (size_t)((const char *)p - m.base);
    auto it = m.live.upper_bound(off);
    if (it == m.live.begin()) return {nullptr, 0};
    --it;
    if (off >= it->first + (it->second ? it->second : 1)) return {nullptr, 0};
    return {m.base + it->first, it->second};
}

bool emu_device_range(const void *p, size_t bytes) {
    emu_alloc a = emu_find_alloc(p);
    if (!a.start) return false;
    return bytes <= a.size - (size_t)((const char *)p - a.start);
}

void *emu_device_malloc(size_t bytes) {
    region &m = mem();
    size_t need = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    if (!need) need = ALIGN;
    for (auto it = m.free_.begin(); it != m.free_.end(); ++it) {
        if (it->second < need) continue;
        size_t off = it->first, len = it->second;
        m.free_.erase(it);
        if (len > need) m.free_[off + need] = len - need;
        m.live[off] = bytes;
        if (off + need > m.high) m.high = off + need;
        emu_access open;
        memset(m.base + off, 0xff, need); /* NaN garbage, like fresh device memory */
        return m.base + off;
    }
    return nullptr;
}

bool emu_device_free(void *p) {
    region &m = mem();
    if (!emu_in_region(p)) return false;
    size_t off = (size_t)((char *)p - m.base);
    auto it = m.live.find(off);
    if (it == m.live.end()) return false;
    size_t len = (it->second + ALIGN - 1) / ALIGN * ALIGN;
    if (!len) len = ALIGN;
    m.live.erase(it);
    auto next = m.free_.lower_bound(off);
    if (next != m.free_.end() && next->first == off + len) { /* merge with the range above */
        len += next->second;
        m.free_.erase(next);
    }
    auto prev = m.free_.lower_bound(off);
    if (prev != m.free_.begin()) { /* and the one below */
        --prev;
        if (prev->first + prev->second == off) {
            off = prev->first;
            len += prev->second;
            m.free_.erase(prev);
        }
    }
    m.free_[off] = len;
    return true;
}

bool emu_is_pinned(const void *p) {
    region &m = mem();
    auto it = m.pinned_len.upper_bound((uintptr_t)p);
    if (it == m.pinned_len.begin()) return false;
    --it;
    return (uintptr_t)p < it->first + it->second;
}

/* ---- the runtime's memory calls ---------------------------------------------------------- */

extern "C" int emu_is_device_pointer(const void *p) {
    std::lock_guard<std::recursive_mutex> lk(emu_lock());
    return emu_in_region(p);
}

extern "C" cudaError_t cudaMalloc(void **p, size_t bytes) {
    std::lock_guard<std::recursive_mutex> lk(emu_lock());
    if (!p) return cudaErrorInvalidValue;
    *p = nullptr;
    if (!bytes) return cudaSuccess;
    /* no pending op can still use the memory handed out: cudaFree synchronises */
    *p = emu_device_malloc(bytes);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

extern "C" cudaError_t cudaFree(void *p) {
    std::lock_guard<std::recursive_mutex> lk(emu_lock());
    if (!p) return cudaSuccess;
    cudaDeviceSynchronize(); /* the real cudaFree synchronises the device too */
    if (!emu_device_free(p)) {
        emu_warn("cudaFree(%p): not the start of a live device allocation", p);
        return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

extern "C" cudaError_t cudaMallocHost(void **p, size_t bytes) {
    std::lock_guard<std::recursive_mutex> lk(emu_lock());
    if (!p) return cudaErrorInvalidValue;
    size_t len = bytes ? bytes : 1;
    *p = aligned_alloc(ALIGN, (len + ALIGN - 1) / ALIGN * ALIGN);
    if (!*p) return cudaErrorMemoryAllocation;
    mem().pinned_len[(uintptr_t)*p] = len;
    return cudaSuccess;
}

extern "C" cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags) {
    (void)flags;
    return cudaMallocHost(p, bytes);
}

extern "C" cudaError_t cudaFreeHost(void *p) {
    std::lock_guard<std::recursive_mutex> lk(emu_lock());
    if (!p) return cudaSuccess;
    cudaDeviceSynchronize(); /* an async copy may still read or write it */
    if (!mem().pinned_len.erase((uintptr_t)p)) {
        emu_warn("cudaFreeHost(%p): not pinned memory from cudaMallocHost", p);
        return cudaErrorInvalidValue;
    }
    free(p);
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    std::lock_guard<std::recursive_mutex> lk(emu_lock());
    region &m = mem();
    size_t f = 0;
    for (auto &kv : m.free_) f += kv.second;
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = m.size;
    return cudaSuccess;
}
