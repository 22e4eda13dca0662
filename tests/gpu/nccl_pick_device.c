/* nccl_pick_device.c: which GPU a rank drives (comm_nccl_pick_device). Pure logic: runs,
 * and must pass, on machines without a GPU. */
#include <stdio.h>
#include <string.h>

#include "nccl/comm_nccl.h"

static int failed, passed;

static void expect(int device, int local_rank, int visible, int want, const char *why_has) {
    char why[256] = "";
    int got = comm_nccl_pick_device(device, local_rank, visible, why, sizeof why);
    int ok = got == want && (want >= 0 || strstr(why, why_has) != NULL);
    printf("%s pick_device(device %d, local rank %d, visible %d) = %d (want %d)%s%s\n",
           ok ? "ok  " : "FAIL", device, local_rank, visible, got, want, *why ? ": " : "", why);
    ok ? passed++ : failed++;
}

int main(void) {
    expect(-1, 0, 4, 0, NULL);      /* rank i of a node takes GPU i */
    expect(-1, 3, 4, 3, NULL);
    expect(-1, 5, 1, 0, NULL);      /* one GPU bound per rank by the launcher */
    expect(2, 0, 4, 2, NULL);       /* an explicit device wins */
    expect(-1, 4, 4, -1, "at most one rank per GPU");
    expect(4, 0, 4, -1, "only 4 GPU(s)");
    expect(-1, 0, 0, -1, "no GPU");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
