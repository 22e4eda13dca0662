/* fuzz_util.h: what the libFuzzer harnesses of tests/fuzz share: reading choices and values
 * from the fuzzer's bytes, scratch files, and HDF5 files built from those choices.
 *
 * Every choice reads as 0 when the input has run out, and choice 0 is always "what a good
 * file has": so the empty input builds a valid file, and each byte the fuzzer adds bends one
 * thing away from it. That keeps the seed corpora tiny and the files mostly plausible, which
 * is what reaches our checks rather than HDF5's own parser (raw file bytes would mostly
 * exercise that, and it is not ours to fix). */
#ifndef DTRAIN_FUZZ_UTIL_H
#define DTRAIN_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <hdf5.h>

/* A promise of the code under test that the harness checks: broken, it is a find like a
 * crash (libFuzzer saves the input on the abort). */
#define FZ_CHECK(cond)                                                                       \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: broken: %s\n", __FILE__, __LINE__, #cond);              \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

typedef struct {
    const uint8_t *p;
    size_t n;
} fz_in;

uint8_t fz_u8(fz_in *in);
uint16_t fz_u16(fz_in *in);
uint32_t fz_u32(fz_in *in);
uint64_t fz_u64(fz_in *in);
/* A choice in [0, n): 0 when the input is spent. */
unsigned fz_pick(fz_in *in, unsigned n);
/* A count: def when the selector byte is 0, else a small value, a 16-bit one, a 32-bit one,
 * or an extreme (0, -1, 2^31, 2^63 ...), as the next bytes say. */
int64_t fz_count(fz_in *in, int64_t def);
/* Up to max bytes of the input, as is (borrowed; *len set). */
const uint8_t *fz_bytes(fz_in *in, size_t max, size_t *len);
/* A NUL-terminated, malloc'd string: def when the selector is 0, else bytes of the input. */
char *fz_string(fz_in *in, const char *def, size_t max);

/* A scratch path unique to this process: $TMPDIR (or /tmp)/dtrain-fuzz-PID/name. The
 * folder is made on first use and removed, with what is in it, at exit. */
const char *fz_path(const char *name);
/* Writes n bytes to path (replacing it); aborts if it cannot: a broken harness, not a find. */
void fz_write_file(const char *path, const void *p, size_t n);

/* DTRAIN_FUZZ_VERBOSE=1 in the environment: a harness says what the reader answered (to see
 * how far a seed gets); otherwise it prints nothing. */
void fz_note(const char *what, const char *err);

/* HDF5 errors are expected by the thousand here: their stack is not printed. */
void fz_h5_init(void);
/* A new file (truncating), in the 1.8 format that dtrain writes; aborts if it cannot. */
hid_t fz_h5_create(const char *path);

/* Attribute kinds an input can choose instead of the good one. */
typedef enum { FZ_I64, FZ_I32, FZ_U64, FZ_F64, FZ_U8, FZ_STR, FZ_VSTR, FZ_NKINDS } fz_kind;

/* Writes attribute name on loc: of kind good with value ival/dval/sval when the selector is
 * 0; otherwise it may be missing, of another kind, an array of two, or hold another value
 * (from the input). */
void fz_attr(fz_in *in, hid_t loc, const char *name, fz_kind good, int64_t ival, double dval, const char *sval);

/* How a dataset is stored and what it holds. */
typedef struct {
    hid_t type;          /* file and memory type (a native type) */
    int ndim;
    hsize_t dims[5];
    const void *data;    /* the good contents, elements of type, or NULL: zeros */
    int fletcher;        /* chunked with a Fletcher32 checksum (as dtrain writes) */
    hsize_t chunk_rows;  /* chunk extent in the first dimension (0: the whole) */
} fz_dset;

/* Writes dataset path (its groups created as needed) as *good says, unless the input bends
 * it: another element type, rank or shape (from fz_count), contiguous or chunked, written
 * only in part or not at all (unallocated chunks), contents from the input, a chunk stored
 * raw with a wrong checksum, or no dataset at all. Data is written only when its size is
 * reasonable (at most 4 MiB); a larger declared shape stays unwritten. */
void fz_dataset(fz_in *in, hid_t file, const char *path, const fz_dset *good);

#endif
