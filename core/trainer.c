/* trainer.c: the step loop shared by every job. Read it top to bottom: trainer_main sets up
 * (trainer_setup), runs the loop (run_loop) and writes the summary; one step (train_step)
 * runs the job's forward/backward over grad_accum micro-batches, averages the gradients
 * over ranks, clips them and applies the optimizer at the scheduled learning rate.
 *
 * Elsewhere: the config (config_cli.c), the run directory (run_dir.c), resume policy
 * (resume.c), what a checkpoint holds (train_state.c), messages (messages.c). */
#define _GNU_SOURCE /* sched_getaffinity */
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device_select.h"
#include "grad_reduce.h"
#include "kernels.h"
#include "nccl/comm_nccl.h"
#include "train_state.h"
#include "util.h"

/* Set by the signal handler, read at step boundaries: the only thing a handler may do. */
static volatile sig_atomic_t g_stop_signal;

/* The ranks agree at every step boundary: the global mean loss, whether any rank's loss or
 * the gradient norm is not finite, and whether any rank was asked to stop. */
typedef struct {
    double loss;
    int nonfinite, stop;
} step_flags;

static int run_loop(trainer *t, clock_state *cs);
static float train_step(trainer *t, long *items);
static void begin_epoch(trainer *t);
static void end_epoch(trainer *t, clock_state *cs, long epochs);
static int finished(const trainer *t, long epochs);
static void log_step(trainer *t, clock_state *cs, double loss);
static void log_eval(trainer *t, clock_state *cs, metrics *m);
static void setup_optimizer(trainer *t);
static void init_params(trainer *t);
static void install_signal_handlers(void);
static step_flags agree(trainer *t, float local_loss);

int trainer_main(const job *j, int argc, char **argv) {
    trainer *t = xcalloc(1, sizeof *t);
    int rc = trainer_setup(t, j, argc, argv);
    if (rc != 0) {
        trainer_teardown(t);
        free(t);
        return rc < 0 ? EXIT_OK : rc;
    }
    trainer_print_world(t);
    clock_state cs = {0};
    cs.t0 = now_sec();
    cs.last_eval_step = cs.last_ckpt_step = -1;
    snprintf(cs.per_s, sizeof cs.per_s, "%s_per_s", j->unit);
    long start_step = t->step;
    rc = run_loop(t, &cs);
    if (rc == EXIT_OK && t->resumed && t->step == start_step && run_dir_complete(t)) {
        /* resumed from the checkpoint of a finished run (a requeued job, say): evaluating and
         * writing again would only add a duplicate metrics line and a summary without timings */
        trainer_log(t, "the run in %s is already complete at step %ld: nothing to do\n", t->out_dir, t->step);
    } else if (rc == EXIT_OK) {
        /* the final model is always evaluated, also when max_steps ends a run between
         * epochs or evaluations: summary.json reports the model the run leaves behind */
        if (cs.last_eval_step != t->step) {
            metrics m = {0};
            log_eval(t, &cs, &m);
        }
        if (cs.last_ckpt_step != t->step) train_state_write(t);
        rc = run_dir_write_summary(t, &cs) == 0 ? EXIT_OK : EXIT_RUNTIME;
    }
    trainer_teardown(t);
    free(t);
    return rc;
}

int trainer_setup(trainer *t, const job *j, int argc, char **argv) {
    memset(t, 0, sizeof *t);
    t->job = j;
    t->comm = comm_init(&argc, &argv);
    t->rank = comm_rank(t->comm);
    t->world = comm_world(t->comm);
    int rc = trainer_parse_args(t, argc, argv);
    if (rc == 0) rc = trainer_check_keys(t);
    if (rc != 0) return rc;
    /* the device is bound before anything is allocated (job->create allocates): a CUDA
     * context made first would put every rank on GPU 0 */
    if ((rc = trainer_select_device(t)) != 0) return rc;
    long threads = config_int(&t->cfg, "threads");
    t->threads = threads > 0 ? (int)threads : trainer_auto_threads(t->comm);
    kernels_set_threads(t->threads);
    comm_set_timeout(t->comm, config_float(&t->cfg, "comm_timeout"));
    t->grad_accum = (int)config_int(&t->cfg, "grad_accum");
    snprintf(t->out_dir, sizeof t->out_dir, "%s", config_str(&t->cfg, "out"));
    const char *cdir = config_str(&t->cfg, "ckpt_dir");
    if (cdir[0]) snprintf(t->ckpt_dir, sizeof t->ckpt_dir, "%s", cdir);
    else snprintf(t->ckpt_dir, sizeof t->ckpt_dir, "%s/checkpoints", t->out_dir);
    if ((rc = run_dir_check_fresh_start(t)) != 0) return rc;
    const char *stop_at = getenv("DTRAIN_TEST_STOP_AT_STEP");
    t->test_stop_at = stop_at ? atol(stop_at) : -1;
    const char *freeze_at = getenv("DTRAIN_TEST_FREEZE_AT_STEP");
    t->test_freeze_at = freeze_at ? atol(freeze_at) : -1;
    rng_seed(&t->rng, (uint64_t)config_int(&t->cfg, "seed"), (uint64_t)t->rank);
    install_signal_handlers();

    t->js = j->create(t);
    model_alloc(&t->model);
    init_params(t);
    t->reducer = trainer_gradient_reducer(t);
    t->steps_per_epoch = j->steps_per_epoch(t->js, t);
    trainer_check(t, t->steps_per_epoch < 1, EXIT_USAGE, "bad value '%ld' for key 'batch_size': batch_size x "
                  "grad_accum (%ld) is more than the training set holds (one step must fit in an epoch)",
                  config_int(&t->cfg, "batch_size"), config_int(&t->cfg, "batch_size") * t->grad_accum);
    long max_steps = config_int(&t->cfg, "max_steps");
    t->total_steps = max_steps > 0 ? max_steps : t->steps_per_epoch * config_int(&t->cfg, "epochs");
    setup_optimizer(t);
    long resumed = resume_maybe(t);
    if (resumed < -1) return (int)(-resumed - 2);
    return run_dir_open(t, resumed);
}

/* Runs steps until the end of training or a stop; returns an exit code. */
static int run_loop(trainer *t, clock_state *cs) {
    long epochs = config_int(&t->cfg, "epochs");
    long log_interval = config_int(&t->cfg, "log_interval");
    long eval_interval = config_int(&t->cfg, "eval_interval");
    long ckpt_interval = config_int(&t->cfg, "ckpt_interval");
    while (!finished(t, epochs)) {
        begin_epoch(t);
        while (t->step_in_epoch < t->epoch_steps && !(config_int(&t->cfg, "max_steps") > 0 && t->step >= t->total_steps)) {
            double s0 = now_sec();
            long items;
            float loss = train_step(t, &items);
            step_flags f = agree(t, loss);
            double dt = now_sec() - s0;
            cs->train_time += dt, cs->epoch_time += dt, cs->log_time += dt;
            cs->items += (double)items * t->world, cs->log_items += (double)items * t->world;
            t->step_in_epoch++;
            t->epoch_loss_sum += loss;
            t->epoch_items += (double)items;
            t->last_loss = f.loss;
            if (f.nonfinite) {
                trainer_log(t, "dtrain: the loss became %s at step %ld (epoch %ld): stopping without a checkpoint; "
                            "the last good one stays in %s\n", isfinite(f.loss) ? "non-finite in the gradients" :
                            (isnan(f.loss) ? "NaN" : "infinite"), t->step, t->epoch + 1, t->ckpt_dir);
                return EXIT_DIVERGED;
            }
            if (log_interval > 0 && t->step % log_interval == 0) log_step(t, cs, f.loss);
            if (eval_interval > 0 && t->step % eval_interval == 0) {
                metrics m = {0};
                log_eval(t, cs, &m);
            }
            if (f.stop) {
                trainer_log(t, "stop requested by a signal at step %ld: writing a checkpoint\n", t->step);
                train_state_write(t);
                return EXIT_PREEMPTED;
            }
            if (ckpt_interval > 0 && t->step % ckpt_interval == 0) {
                train_state_write(t);
                cs->last_ckpt_step = t->step;
            }
        }
        if (t->step_in_epoch >= t->epoch_steps) {
            end_epoch(t, cs, epochs);
            if (ckpt_interval == 0 && !finished(t, epochs)) {
                train_state_write(t);
                cs->last_ckpt_step = t->step;
            }
        }
    }
    return EXIT_OK;
}

/* One optimizer step over grad_accum micro-batches; returns this rank's mean loss. */
static float train_step(trainer *t, long *items) {
    model_zero_grads(&t->model);
    double loss = 0;
    *items = 0;
    for (int micro = 0; micro < t->grad_accum; micro++) {
        long n = 0;
        /* the last backward pass may start reducing the gradients it has finished */
        if (micro == t->grad_accum - 1) grad_reduce_arm(t->reducer);
        loss += t->job->forward_backward(t->js, t, t->step_in_epoch, micro, &n);
        *items += n;
    }
    trainer_apply_gradients(t);
    if (t->job->after_step) t->job->after_step(t->js, t);
    return (float)(loss / t->grad_accum);
}

void trainer_apply_gradients(trainer *t) {
    grad_reduce_finish(t->reducer);
    t->grad_norm = clip_grad_norm(&t->model, config_float(&t->cfg, "grad_clip"));
    t->lr = lr_at(&t->sched, t->step);
    optim_step(&t->opt, &t->model, (float)t->lr);
    t->step++;
}

static step_flags agree(trainer *t, float local_loss) {
    /* the test hook behaves exactly like a signal that arrives during step test_stop_at */
    int stop = g_stop_signal != 0 || (t->test_stop_at > 0 && t->step == t->test_stop_at);
    double v[3] = {local_loss, !isfinite(local_loss) || !isfinite(t->grad_norm), stop};
    /* the test hook: a rank that hangs (or whose host is cut off) right here */
    if (t->test_freeze_at > 0 && t->step == t->test_freeze_at && t->rank == t->world - 1) raise(SIGSTOP);
    comm_step_sum_f64(t->comm, v, 3);
    step_flags f = {v[0] / t->world, v[1] > 0, v[2] > 0};
    return f;
}

static void begin_epoch(trainer *t) {
    if (t->resume_job_state) {
        long first = 0;
        t->epoch_steps = t->job->load_state(t->js, t, t->epoch, t->step_in_epoch, t->resume_world,
                                            t->resume_fields, &first);
        train_state_free_resume(t);
        t->step_in_epoch = first;
        t->resume_job_state = 0;
    } else {
        t->epoch_steps = t->job->start_epoch(t->js, t, t->epoch);
    }
}

/* End of an epoch: the epoch's train loss over all ranks and steps, the evaluation, and a
 * metrics line (when evaluation follows epochs rather than steps). */
static void end_epoch(trainer *t, clock_state *cs, long epochs) {
    double sums[2] = {t->epoch_loss_sum, t->epoch_items};
    comm_allreduce_sum_f64(t->comm, sums, 2);
    double train_loss = sums[0] / ((double)t->epoch_steps * t->world);
    if (config_int(&t->cfg, "eval_interval") == 0) {
        metrics m = {0};
        metrics_set(&m, "epoch", (double)(t->epoch + 1));
        metrics_set(&m, "step", (double)t->step);
        metrics_set(&m, "train_loss", train_loss);
        t->job->eval(t->js, t, &m);
        double rate = cs->epoch_time > 0 ? sums[1] / cs->epoch_time : 0;
        metrics_set(&m, cs->per_s, rate);
        metrics_set(&m, "lr", t->lr);
        metrics_set(&m, "epoch_time_s", cs->epoch_time);
        run_dir_write_metrics(t, &m);
        cs->last_eval_step = t->step;
        double test_loss = 0, test_acc = 0;
        metrics_get(&m, "test_loss", &test_loss);
        int has_acc = metrics_get(&m, "test_acc", &test_acc);
        trainer_log(t, "epoch %ld/%ld | train loss %.4f | test loss %.4f", t->epoch + 1, epochs, train_loss,
                    test_loss);
        if (has_acc) trainer_log(t, " | test acc %.2f%%", 100.0 * test_acc);
        trainer_log(t, " | %.0f %s/s | %.2f s\n", rate, t->job->unit, cs->epoch_time);
    }
    t->epoch++;
    t->step_in_epoch = 0;
    t->epoch_steps = 0;
    t->epoch_loss_sum = t->epoch_items = 0;
    cs->epoch_time = 0;
}

static int finished(const trainer *t, long epochs) {
    return config_int(&t->cfg, "max_steps") > 0 ? t->step >= t->total_steps : t->epoch >= epochs;
}

static void log_step(trainer *t, clock_state *cs, double loss) {
    double rate = cs->log_items / cs->log_time;
    double eta = cs->train_time / (double)t->step * (double)(t->total_steps - t->step);
    trainer_log(t, "step %ld/%ld | loss %.4f | lr %.3e | %.1f ms | %.0f %s/s | grad norm %.3f | eta %.0f s\n",
                t->step, t->total_steps, loss, t->lr, 1e3 * cs->log_time / config_int(&t->cfg, "log_interval"),
                rate, t->job->unit, t->grad_norm, eta);
    metrics m = {0};
    metrics_set(&m, "step", (double)t->step);
    metrics_set(&m, "loss", loss);
    metrics_set(&m, "lr", t->lr);
    metrics_set(&m, "grad_norm", t->grad_norm);
    metrics_set(&m, cs->per_s, rate);
    metrics_set(&m, "ms_per_step", 1e3 * cs->log_time / config_int(&t->cfg, "log_interval"));
    run_dir_write_metrics(t, &m);
    cs->log_time = cs->log_items = 0;
}

static void log_eval(trainer *t, clock_state *cs, metrics *m) {
    metrics_set(m, "step", (double)t->step);
    t->job->eval(t->js, t, m);
    run_dir_write_metrics(t, m);
    trainer_log(t, "eval at step %ld:", t->step);
    for (int i = 0; i < m->n; i++)
        if (!m->kv[i].is_str && strcmp(m->kv[i].key, "step") != 0)
            trainer_log(t, " %s %.4f", m->kv[i].key, m->kv[i].num);
    trainer_log(t, "\n");
    cs->last_eval_step = t->step;
}

/* ranks x threads <= cores: the cores this process may run on, shared by the ranks of
 * the node. Open MPI binds each of 1-2 ranks to one core, which the affinity mask shows. */
int trainer_auto_threads(const comm *c) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int per_rank = (int)(online > 0 ? online : 1) / comm_local_size(c);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int mine = CPU_COUNT(&set);
        if (mine < per_rank) per_rank = mine;
    }
    return per_rank < 1 ? 1 : per_rank;
}

static void setup_optimizer(trainer *t) {
    const config *c = &t->cfg;
    if (optim_init(&t->opt, config_str(c, "optimizer"), &t->model, (float)config_float(c, "beta1"),
                   (float)config_float(c, "beta2"), (float)config_float(c, "eps"),
                   (float)config_float(c, "weight_decay"), (float)config_float(c, "momentum")) != 0)
        trainer_fail(t, EXIT_USAGE, "unknown optimizer '%s'", config_str(c, "optimizer"));
    t->sched.kind = strcmp(config_str(c, "lr_schedule"), "cosine") == 0 ? LR_COSINE : LR_CONSTANT;
    t->sched.lr = config_float(c, "lr");
    t->sched.min_lr = config_float(c, "min_lr");
    t->sched.warmup = config_int(c, "warmup_steps");
    t->sched.total = t->total_steps;
}

/* Rank 0 initialises the host copy, every rank receives it, then it goes to the backend's
 * memory: the job's init_params sees host memory, whatever the device. */
static void init_params(trainer *t) {
    if (t->rank == 0) {
        rng init;
        rng_seed(&init, (uint64_t)config_int(&t->cfg, "seed"), 0x1417ull << 32);
        t->job->init_params(t->js, t, &init);
    }
    comm_bcast(t->comm, t->model.host, t->model.nfloats * sizeof(float), 0);
    model_upload(&t->model);
}

static void on_stop_signal(int sig) { g_stop_signal = sig; }

static void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

void trainer_teardown(trainer *t) {
    if (t->js && t->job->destroy) t->job->destroy(t->js);
    t->js = NULL;
    if (t->metrics_file) fclose(t->metrics_file);
    t->metrics_file = NULL;
    train_state_free_resume(t);
    optim_free(&t->opt);
    grad_reduce_free(t->reducer);
    t->reducer = NULL;
    if (t->nccl) comm_nccl_finalize(t->nccl);
    t->nccl = NULL;
    for (int b = 0; b < t->nbuffers; b++) kernels_free(t->buffers[b].data);
    t->nbuffers = 0;
    if (t->model.params) model_free(&t->model);
    config_free(&t->cfg);
    comm_finalize(t->comm);
    t->comm = NULL;
}
