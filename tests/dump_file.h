/* dump_file.h: what the comparison programs (mpi_equivalence, gpu_train/one_step) share:
 * reading back a dump of raw floats, and taking "--name VALUE" out of argv before the rest
 * goes to the trainer's own command line. */
#ifndef DTRAIN_DUMP_FILE_H
#define DTRAIN_DUMP_FILE_H

#include <stddef.h>

/* The whole of PATH as floats (*n of them); dies unless it holds a whole number (>= 1). */
float *dump_read(const char *path, size_t *n);
/* Strips "--name VALUE" from argv; returns VALUE or NULL. */
const char *take_arg(int *argc, char **argv, const char *name);

#endif
