/* gpu_place.c: which GPU a rank drives (comm_nccl.h's placement functions). Pure logic over
 * the environment and the MPI communicator, so it is part of dtrain_dist and every binary has
 * it, with or without NCCL: the trainer binds the GPU of --device cuda before anything is
 * allocated, and comm_nccl_init binds the same one. */
#include <stdio.h>
#include <stdlib.h>

#include "nccl/comm_nccl.h"

/* a non-negative integer from the environment, or -1 */
static int env_index(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return *end == '\0' && v >= 0 && v < 1 << 20 ? (int)v : -1;
}

int comm_nccl_local_rank(const comm *mpi) {
    int r = env_index("OMPI_COMM_WORLD_LOCAL_RANK");
    if (r < 0) r = env_index("SLURM_LOCALID");
    return r >= 0 ? r : comm_local_rank(mpi);
}

int comm_nccl_pick_device(int device, int local_rank, int visible, char *why, size_t why_len) {
    if (visible <= 0) {
        snprintf(why, why_len, "no GPU is visible to this rank");
        return -1;
    }
    if (device >= 0) {
        if (device < visible) return device;
        snprintf(why, why_len, "device %d was asked for, but only %d GPU(s) are visible", device,
                 visible);
        return -1;
    }
    if (visible == 1) return 0; /* one GPU per rank, bound by the launcher */
    if (local_rank >= 0 && local_rank < visible) return local_rank;
    snprintf(why, why_len,
             "local rank %d, but only %d GPUs are visible on this node: start at most one rank "
             "per GPU",
             local_rank, visible);
    return -1;
}
