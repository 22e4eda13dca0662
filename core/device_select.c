/* device_select.c: the keys device, gpu and tf32, turned into a bound backend. */
#include "device_select.h"

#include <stdio.h>
#include <string.h>

#include "device.h"
#include "grad_reduce.h"
#include "nccl/comm_nccl.h"
#include "trainer_internal.h"

int trainer_select_device(trainer *t) {
    const char *dev = config_str(&t->cfg, "device");
    int gpu = (int)config_int(&t->cfg, "gpu"), tf32 = (int)config_int(&t->cfg, "tf32");
    if (strcmp(dev, "cpu") == 0) return 0;
    int visible = kernels_cuda_devices();
    char why[512] = "";
    if (strcmp(dev, "auto") == 0) {
        /* cuda only when every rank can: one rank on the CPU would not join NCCL */
        int32_t cannot = !kernels_cuda_built() || visible <= 0;
        comm_allreduce_max_i32(t->comm, &cannot, 1);
        if (cannot) return 0;
    } else if (!kernels_cuda_built()) {
        kernels_use_cuda(0, tf32, why, sizeof why); /* says how to get a build with CUDA */
    }
    const char *key = "device", *value = dev;
    if (!why[0]) {
        int pick = comm_nccl_pick_device(gpu, comm_nccl_local_rank(t->comm), visible, why,
                                         sizeof why);
        if (pick < 0 && gpu >= 0 && visible > 0) key = "gpu", value = config_str(&t->cfg, "gpu");
        if (pick >= 0) kernels_use_cuda(pick, tf32, why, sizeof why);
    }
    /* collective: every rank learns whether one failed, the lowest failing rank says why */
    trainer_check(t, why[0] != 0, EXIT_USAGE, "bad value '%s' for key '%s': %s", value, key, why);
    return 0;
}

/* PyTorch DDP's default bucket: large enough for NCCL's bandwidth, small enough that the
 * first reductions start while most of the backward pass is still to run */
#define GRAD_BUCKET_BYTES ((size_t)25 << 20)

struct grad_reducer *trainer_gradient_reducer(trainer *t) {
    if (!kernels_on_cuda()) return grad_reduce_host(t->comm, &t->model);
    if (!comm_nccl_built()) return grad_reduce_staged(t->comm, &t->model);
    t->nccl = comm_nccl_init(t->comm, kernels_device_index());
    return grad_reduce_nccl(t->nccl, &t->model, kernels_stream(), GRAD_BUCKET_BYTES / sizeof(float));
}

const char *trainer_device_text(const trainer *t, char *buf, size_t len) {
    if (!kernels_on_cuda()) snprintf(buf, len, "cpu");
    else
        snprintf(buf, len, "cuda (GPU %d: %s, tf32 %s, gradients by %s)", kernels_device_index(),
                 kernels_device_name(), config_int(&t->cfg, "tf32") ? "on" : "off",
                 t->reducer ? grad_reduce_describe(t->reducer) : "?");
    return buf;
}
