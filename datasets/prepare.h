/* prepare.h: what the converters (`dtrain prepare mnist|text`) return. */
#ifndef DTRAIN_PREPARE_H
#define DTRAIN_PREPARE_H

/* The CLI exits 2 for bad input (the user must fix the input files) and 1 for a failure to
 * write the output (README's exit-code table). */
enum {
    PREPARE_OK = 0,
    PREPARE_FAILED = -1,   /* the output could not be written (HDF5, disk, rename) */
    PREPARE_BAD_INPUT = -2 /* an input file is missing, unreadable, malformed or wrong */
};

#endif
