/* figures_json.c: every figure of a run as one JSON object (the entry of report.json that
 * the table is then written from, so the two cannot disagree). */
#include <math.h>
#include <string.h>

#include "report.h"

static void set_num(json_t *o, const char *key, double v) {
    if (isfinite(v)) json_object_set_new(o, key, json_real(v));
}

/* copies summary.json's number under key, if there */
static void copy_num(json_t *dst, const run_files *r, const char *key) {
    int found;
    double v = run_num(r, key, &found);
    if (found) set_num(dst, key, v);
}

static json_t *data_json(const run_files *r, const run_outputs *o) {
    json_t *d = json_object();
    int classify = strcmp(r->job, "classify") == 0, gpt = strcmp(r->job, "gpt") == 0, found;
    json_object_set_new(d, "unit", json_string(gpt ? "tokens" : "images"));
    json_object_set_new(d, "labelled", json_string(classify ? "yes: the label is the target"
                                                   : gpt ? "no: the next token is the target"
                                                         : "yes: the label conditions the image (dropped at p_uncond)"));
    if (o->train_set > 0) set_num(d, "train_set", o->train_set);
    double steps = run_num(r, "steps", &found);
    if (!found && r->train_loss.n) steps = r->train_loss.x[r->train_loss.n - 1];
    set_num(d, "per_step", (double)o->examples_per_step);
    set_num(d, "seen", steps * (double)o->examples_per_step);
    double epochs = run_num(r, "epochs", &found);
    if (found) set_num(d, "times_seen", epochs);
    else if (o->train_set > 0) set_num(d, "times_seen", steps * (double)o->examples_per_step / o->train_set);
    return d;
}

static json_t *compute_json(const run_files *r, const run_outputs *o) {
    json_t *c = json_object();
    int found;
    double steps = run_num(r, "steps", &found);
    if (!found && r->train_loss.n) steps = r->train_loss.x[r->train_loss.n - 1];
    set_num(c, "steps", steps);
    if (o->flops_per_step > 0) {
        set_num(c, "flops_per_example", o->flops_per_example);
        set_num(c, "flops_per_step", o->flops_per_step);
        set_num(c, "flops_total", o->flops_per_step * steps);
    }
    copy_num(c, r, "wall_time_s"), copy_num(c, r, "train_time_s");
    copy_num(c, r, "world_size"), copy_num(c, r, "threads_per_rank");
    copy_num(c, r, "images_per_s"), copy_num(c, r, "tokens_per_s");
    const char *dev = run_cfg(r, "device");
    json_object_set_new(c, "device", json_string(*dev && strcmp(dev, "auto") != 0 ? dev : "cpu"));
    return c;
}

static json_t *eval_json(const run_files *r, const run_outputs *o) {
    json_t *e = json_object();
    int found;
    if (strcmp(r->job, "classify") == 0) {
        copy_num(e, r, "test_acc"), copy_num(e, r, "test_loss");
        double p = 0, rc = 0;
        int n = 0;
        for (int k = 0; k < 10; k++) {
            char kp[32], kr[32];
            snprintf(kp, sizeof kp, "precision_%d", k), snprintf(kr, sizeof kr, "recall_%d", k);
            copy_num(e, r, kp), copy_num(e, r, kr);
            double a = run_num(r, kp, &found), b = run_num(r, kr, &n);
            if (found && n) p += a, rc += b;
        }
        if (json_object_get(e, "precision_9")) set_num(e, "macro_precision", p / 10), set_num(e, "macro_recall", rc / 10);
        return e;
    }
    double v = run_num(r, "val_loss", &found);
    if (found) set_num(e, "val_loss", v);
    if (found && strcmp(r->job, "gpt") == 0) set_num(e, "perplexity", exp(v));
    if (o->judge) json_object_set(e, "judge", o->judge);
    return e;
}

static json_t *predict_json(const run_files *r, const run_outputs *o) {
    json_t *p = json_object();
    if (o->has_confusion) {
        set_num(p, "inputs", (double)o->pred_total), set_num(p, "same_label_twice", (double)o->pred_same);
        set_num(p, "share_identical", o->pred_total ? (double)o->pred_same / (double)o->pred_total : 0);
    }
    if (o->gen_seeds > 0) {
        set_num(p, "seeds", o->gen_seeds), set_num(p, "distinct_outputs", o->gen_distinct);
        /* pairs of seeds whose outputs are identical, over all pairs */
        set_num(p, "share_identical", 1.0 - (double)o->gen_distinct / o->gen_seeds);
        json_object_set_new(p, "same_seed_twice_identical", json_boolean(o->repeat_same == 1));
        if (strcmp(r->job, "diffusion") == 0) set_num(p, "mean_abs_pixel_difference", o->pixel_diff);
    }
    return p;
}

static json_t *output_json(const run_files *r, const run_outputs *o) {
    json_t *out = json_object();
    if (o->has_confusion) {
        json_t *m = json_array();
        for (int i = 0; i < 10; i++) {
            json_t *row = json_array();
            for (int j = 0; j < 10; j++) json_array_append_new(row, json_integer(o->confusion[i][j]));
            json_array_append_new(m, row);
        }
        json_object_set_new(out, "confusion_matrix", m);
    }
    if (o->sample_text) {
        json_object_set_new(out, "prompt", json_string(o->prompt));
        json_object_set_new(out, "seed", json_integer(o->sample_seed));
        json_object_set_new(out, "text", json_string(o->sample_text));
    }
    if (*o->grid_png) json_object_set_new(out, "sample_grid", json_string(o->grid_png));
    (void)r;
    return out;
}

json_t *figures_json(const run_files *r, const run_outputs *o) {
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(r->name));
    json_object_set_new(j, "dir", json_string(r->dir));
    json_object_set_new(j, "job", json_string(r->job));
    if (*run_cfg(r, "model")) json_object_set_new(j, "model", json_string(run_cfg(r, "model")));
    json_object_set_new(j, "status", json_string(!r->summary ? "unfinished (no summary.json)"
                                                 : !*r->ckpt ? "finished, no checkpoint"
                                                             : "finished"));
    if (*r->ckpt) json_object_set_new(j, "checkpoint", json_string(r->ckpt));
    copy_num(j, r, "params");
    json_object_set_new(j, "data", data_json(r, o));
    json_object_set_new(j, "compute", compute_json(r, o));
    json_object_set_new(j, "evaluation", eval_json(r, o));
    json_object_set_new(j, "output", output_json(r, o));
    json_object_set_new(j, "predictability", predict_json(r, o));
    json_t *plots = json_object();
    if (*o->loss_png) json_object_set_new(plots, "loss", json_string(o->loss_png));
    if (*o->throughput_png) json_object_set_new(plots, "throughput", json_string(o->throughput_png));
    if (*o->confusion_png) json_object_set_new(plots, "confusion", json_string(o->confusion_png));
    json_object_set_new(j, "plots", plots);
    return j;
}
