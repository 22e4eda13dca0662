#define _POSIX_C_SOURCE 200809L /* nanosleep */
/* allreduce_rate: how long MPI takes to all-reduce one buffer of floats, the reference for
 * dtrain's gradient all-reduce in bench/bench_multinode.sh (same hosts, same buffer size).
 *
 *   mpirun -np W bench_allreduce_rate FLOATS [REPS=20]
 *
 * Times, after 3 warm-up calls and a barrier, REPS back-to-back calls of (a) MPI_Allreduce in
 * place (Open MPI's tuned collective) and (b) MPI_Iallreduce polled with MPI_Test until done
 * and (c) the same, yielding the core between polls after the first millisecond (what dtrain
 * does when comm_timeout > 0), on rank 0, as dtrain's DTRAIN_COMM_STATS does.
 * Prints one line per method: ms per all-reduce (the mean) and the bus bandwidth,
 * 2 (W-1)/W x bytes / time, the bytes each link carries in a ring all-reduce. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* one all-reduce of buf: 0 blocking, 1 polled, 2 polled yielding the core between polls
 * after the first millisecond, as dist/comm_mpi.c does */
static void allreduce(float *buf, int n, int how) {
    if (how == 0) {
        MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        return;
    }
    MPI_Request req;
    int done = 0;
    double t0 = MPI_Wtime();
    MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
    for (;;) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) break;
        if (how == 2 && MPI_Wtime() - t0 > 1e-3) nanosleep(&(struct timespec){0, 20000}, NULL);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    long n = argc > 1 ? atol(argv[1]) : 0;
    int reps = argc > 2 ? atoi(argv[2]) : 20;
    if (n < 1 || n > (1L << 30) || reps < 1) {
        if (rank == 0) fprintf(stderr, "usage: bench_allreduce_rate FLOATS (1..2^30) [REPS >= 1]\n");
        MPI_Finalize();
        return 2;
    }
    float *buf = calloc((size_t)n, sizeof *buf);
    if (!buf) {
        fprintf(stderr, "bench_allreduce_rate: out of memory for %ld floats\n", n);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    static const char *const names[] = {"MPI_Allreduce", "MPI_Iallreduce+MPI_Test", "MPI_Iallreduce+MPI_Test+yield"};
    for (int nb = 0; nb < 3; nb++) {
        for (int i = 0; i < 3; i++) allreduce(buf, (int)n, nb);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int i = 0; i < reps; i++) allreduce(buf, (int)n, nb);
        double mean = (MPI_Wtime() - t0) / reps, bytes = 4.0 * (double)n;
        if (rank == 0)
            printf("%s: %ld floats (%.2f MB) over %d ranks: %.3f ms, bus bandwidth %.1f MB/s\n", names[nb], n,
                   bytes / 1e6, world, 1e3 * mean, 2.0 * (world - 1) / world * bytes / mean / 1e6);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
