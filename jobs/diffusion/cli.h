/* cli.h: the options of `dtrain sample diffusion` and `dtrain eval diffusion`. */
#ifndef DTRAIN_DIFFUSION_CLI_H
#define DTRAIN_DIFFUSION_CLI_H

#include "diffusion.h"

typedef struct dopts {
    const char *ckpt, *out_png, *out_h5, *classifier, *out_json;
    long n;            /* sample: per label with --label all, else in all; eval: per label */
    int label;         /* 0..9, 10 = unconditional, -1 = all */
    gen_opts gen;
    long seed;
    int ema;
} dopts;

/* Takes the tool's own options out of argv; the rest (--key value pairs for the stored
 * config, e.g. --data) goes to rest[1..] after rest[0] = argv[0]. 0, or an exit code. */
int dopts_parse(int argc, char **argv, dopts *o, char **rest, int *nrest, int eval);

/* Loads the diffusion checkpoint for inference, with the EMA weights when o->ema. */
int dopts_load(trainer *t, const dopts *o, int nrest, char **rest);

#endif
