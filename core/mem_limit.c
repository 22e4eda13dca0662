/* mem_limit.c: see mem_limit.h. */
#include "mem_limit.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "trainer.h"

static char g_source[1024];

void mem_limit_source(const char *source) {
    snprintf(g_source, sizeof g_source, "%s", source ? source : "");
}

unsigned long long mem_physical_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page <= 0) return 0;
    return (unsigned long long)pages * (unsigned long long)page;
}

void mem_limit_check(unsigned long long bytes, int overflow, const char *what) {
    unsigned long long phys = mem_physical_bytes();
    if (!overflow && (phys == 0 || bytes <= phys)) return;
    const char *src = g_source[0] ? g_source : "the config";
    if (overflow)
        fprintf(stderr, "dtrain: %s: %s would need more than 2^64 bytes: the sizes it sets are absurd\n", src, what);
    else
        fprintf(stderr, "dtrain: %s: %s would need %.1f GiB, more than this machine's %.1f GiB of physical memory "
                "(the limit): smaller sizes (block_size, batch_size, the model's width and depth) are needed\n",
                src, what, (double)bytes / (1u << 30), (double)phys / (1u << 30));
    fflush(stderr);
    exit(EXIT_USAGE);
}
