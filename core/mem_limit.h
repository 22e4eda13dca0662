/* mem_limit.h: the memory a configuration asks for, checked before it is allocated.
 *
 * A config (a file, the command line, or the config stored in a checkpoint that `dtrain
 * sample` and `dtrain eval` rebuild the model from) can ask for sizes no machine has: a
 * 16,384-token block on a 2 GiB box. Rather than an out-of-memory abort (or the OOM
 * killer) after part of it is allocated, the arenas' sizes are added up in overflow-checked
 * 64-bit arithmetic when they are laid out, and a request larger than the machine's
 * physical memory (sysconf: _SC_PHYS_PAGES x _SC_PAGE_SIZE) ends the process with exit 2
 * (EXIT_USAGE) and one line naming where the config came from. */
#ifndef DTRAIN_MEM_LIMIT_H
#define DTRAIN_MEM_LIMIT_H

/* Where the config being built came from, for the message ("ckpt.h5: its stored config");
 * NULL: "the config". The string is copied. */
void mem_limit_source(const char *source);
/* The machine's physical memory in bytes (0 if unknown: then nothing is refused). */
unsigned long long mem_physical_bytes(void);
/* Ends the process (exit 2) when `bytes`, what `what` needs, exceed physical memory, or
 * when `overflow` says the size did not even fit in 64 bits. */
void mem_limit_check(unsigned long long bytes, int overflow, const char *what);

#endif
