/* gpu_jobs.h: what the parts of gpu_jobs share (bench/gpu_check.sh's job-level check).
 *
 * gpu_jobs runs the jobs' own models (jobs/{classify,gpt,diffusion}/model.c), arenas
 * (core/params.c, core/activations.c) and optimizer (core/optim.c) on the kernels'
 * backends, without the trainer, MPI or HDF5, so that it builds on a GPU machine that has
 * only the CUDA toolkit, CMake, gcc and zlib:
 *   gj_gpt2.c   GPT-2 124M shapes: forward, backward, AdamW; memory, time per phase and per
 *               op, tokens/s, achieved TFLOP/s;
 *   gj_train.c  a job for N steps on the current backend: its loss curve and throughput;
 *   gj_data.c   the data, read from the repository's data/ (MNIST idx.gz, tinyshakespeare);
 *   gpu_jobs.c  the command line, the device, and the cpu-against-cuda comparison. */
#ifndef DTRAIN_GPU_JOBS_H
#define DTRAIN_GPU_JOBS_H

#include <stddef.h>
#include <stdint.h>

typedef struct gj_opts {
    int tiny;             /* shapes and step counts for the emulator (seconds, not minutes) */
    int steps;            /* 0: the mode's default */
    int batch;            /* 0: the mode's default */
    int tf32;             /* TF32 GEMMs on cuda */
    int threads;          /* CPU backend threads */
    double cublas_tflops; /* cuBLAS's measured rate for this precision (0: not given) */
    double tol;           /* relative tolerance of each loss of the first `tight` steps */
    int tight;
    int window;           /* then the means over windows of this many steps ... */
    double window_tol;    /* ... within this relative tolerance */
    const char *data_dir; /* the repository's data/ */
} gj_opts;

/* ---- data (gj_data.c) ----------------------------------------------------------------- */

typedef struct gj_mnist {
    uint8_t *images; /* n x 28 x 28, row-major, uint8 */
    uint8_t *labels; /* n, 0..9 */
    int n, H, W;
} gj_mnist;

/* DATA/mnist/train-{images-idx3,labels-idx1}-ubyte.gz through datasets/mnist_idx.c. 0, or -1
 * with a line in err. */
int gj_mnist_load(gj_mnist *d, const char *data_dir, char *err, size_t errlen);
void gj_mnist_free(gj_mnist *d);

typedef struct gj_text {
    int32_t *ids; /* the file's bytes as ids 0 .. vocab-1 (sorted distinct bytes) */
    size_t n;
    int vocab;
} gj_text;

/* DATA/tinyshakespeare.txt, character level (as `dtrain prepare text` does by default). */
int gj_text_load(gj_text *t, const char *data_dir, char *err, size_t errlen);
void gj_text_free(gj_text *t);

/* ---- training (gj_train.c) ------------------------------------------------------------ */

typedef struct gj_curve {
    int steps;
    float *loss;         /* [steps], the loss of each step's batch */
    double items_per_s;  /* images or tokens per second over the steps after the warm-up */
    double seconds;      /* the whole run, data loading and set-up included */
    double param_digest; /* sum of |p| over the final parameters, for the report */
} gj_curve;

/* The job's name: "classify", "gpt" or "diffusion"; NULL if unknown. Its unit ("images" or
 * "tokens") in *unit. */
int gj_job_known(const char *job, const char **unit);
/* Steps the comparison runs by default. */
int gj_job_default_steps(const char *job, int tiny);
/* Runs `job` for c->steps steps on the backend now in use, from a fixed initialisation and
 * fixed batches (the same on every backend). 0, or -1 with a line in err (data missing). */
int gj_train(const char *job, const gj_opts *o, gj_curve *c, char *err, size_t errlen);

/* ---- GPT-2 124M shapes (gj_gpt2.c) ---------------------------------------------------- */

/* On the backend now in use; prints its report; 0 on success, 1 when a check failed. */
int gj_gpt2(const gj_opts *o);

/* ---- shared helpers (gpu_jobs.c) ------------------------------------------------------ */

/* "cpu" or the GPU's name */
const char *gj_device_name(void);
/* device memory in use (total - free) and free, in bytes, on cuda; -1 on cpu */
double gj_device_used_bytes(void);
double gj_device_free_bytes(void);

#endif
