/* train_state.h: the checkpoint contract (see train_state.c): the table of the trainer's
 * training state, and the reading of format-1 checkpoints into the same record. */
#ifndef DTRAIN_TRAIN_STATE_H
#define DTRAIN_TRAIN_STATE_H

#include <stddef.h>

#include "trainer_internal.h"

/* What a per-rank value becomes when a checkpoint is resumed on another number of ranks. */
typedef enum { RESIZE_RESEED = 1, RESIZE_SUM_RANK0 } resize_policy;

typedef struct state_entry {
    const char *name;   /* the attribute or dataset in /train_state */
    ckpt_type type;
    int per_rank;       /* 0: one value of the run; n: n values per rank */
    size_t at, into;    /* the trainer member written, and the one a resume fills */
    resize_policy on_resize;
    const char *v1_name; /* where format 1 kept it (root attribute or dataset); NULL: its blob */
} state_entry;

extern const state_entry TRAIN_STATE[];
extern const int TRAIN_STATE_N;

#define TRAIN_STATE_MAX 32     /* trainer and job fields of one checkpoint */
/* Limits on what a checkpoint may say (train_state.c checks them before any is used): the
 * world that wrote it, and every counter (step, epoch, ...): 2^53, where a double (the
 * metrics' JSON numbers) still counts exactly. */
#define STATE_WORLD_MAX (1 << 20)
#define STATE_COUNTER_MAX (1LL << 53)
#define JOB_STATE_MAX 8

#define STATE_TYPE_SIZE(type) ((type) == CKPT_I32 ? 4 : (type) == CKPT_U8 ? 1 : 8)
size_t state_type_size(ckpt_type type);

/* The training state as read from a checkpoint, before it goes into the trainer. */
typedef struct loaded_state {
    int64_t vals[TRAIN_STATE_MAX];        /* the trainer's scalars (any type, 8 bytes each) */
    ckpt_field trainer[TRAIN_STATE_MAX];  /* TRAIN_STATE's fields, per-rank data malloc'd */
    ckpt_field job[JOB_STATE_MAX];        /* the job's state_fields, data malloc'd */
    int njob;
} loaded_state;

/* ckpt_v1.c: a format-1 checkpoint's state into the same record. -1 with err. */
int read_fields_v1(ckpt *c, const job *j, loaded_state *s, char *err, size_t errlen);

/* Reads a checkpoint's training state (either format) into s and checks every value of it
 * (train_state.c: ranges, consistency, the stored config) before anything uses it: what a
 * resume does before it applies the state. -1 with err; s is to be freed either way. */
int train_state_read(ckpt *c, const job *j, loaded_state *s, char *err, size_t errlen);
/* Frees what s holds: the per-rank fields, and the job's unless keep_job. */
void train_state_free_loaded(loaded_state *s, int keep_job);

/* Writes a checkpoint of the whole training state (collective); returns the seconds it
 * took. Brings every rank down if it cannot be written. */
double train_state_write(trainer *t);
/* Restores the tensors and the training state (collective checks); the job's fields wait
 * in t->resume_fields for its load_state. */
void train_state_load(trainer *t, ckpt *c, const char *path);
void train_state_free_resume(trainer *t);
/* The step a checkpoint was written at (0 if it holds none), or -1 with err when it is out
 * of range or unreadable. */
long train_state_step(ckpt *c, char *err, size_t errlen);

#endif
