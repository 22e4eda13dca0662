/* hdf5.h, a stand-in for bench/gpu_check's standalone build only: datasets/mnist_idx.c
 * includes datasets/ds_util.h, which declares the HDF5 helpers of datasets/ next to
 * ds_fail. gpu_jobs reads idx files and never calls HDF5, so the types those declarations
 * name are all it needs, and a GPU machine without HDF5's headers can build it. The main
 * build uses the real header. */
#ifndef GJ_NO_HDF5_H
#define GJ_NO_HDF5_H

#include <stdint.h>

typedef int64_t hid_t;
typedef int herr_t;
typedef herr_t (*H5E_auto2_t)(hid_t stack, void *client_data);

#endif
