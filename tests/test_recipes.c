/* Recipes: every .conf file in configs/ loads with --config's loader on top of its job's keys and
 * defaults; the job's default recipe files equal the compiled-in defaults, key by key, and
 * name every key the job's compiled-in defaults set. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify/classify.h"
#include "diffusion/diffusion.h"
#include "gpt/gpt.h"
#include "trainer.h"

static const char *src_dir(void) {
    const char *s = getenv("DTRAIN_SOURCE_DIR");
    return s ? s : ".";
}

/* The job a recipe is for: the job its name starts with (gpt2-124m is a gpt recipe). */
static const job *job_of(const char *file) {
    static const job *const jobs[] = {&classify_job, &gpt_job, &diffusion_job};
    for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++) {
        size_t n = strlen(jobs[i]->name);
        if (strncmp(file, jobs[i]->name, n) == 0) return jobs[i];
    }
    return NULL;
}

/* The config `dtrain JOB` starts from: trainer keys, job keys, the job's defaults. */
static config job_config(const job *j) {
    config c = {0};
    char err[512];
    cr_assert_eq(config_declare(&c, trainer_keys, err, sizeof err), 0, "%s", err);
    cr_assert_eq(config_declare(&c, j->keys, err, sizeof err), 0, "%s", err);
    if (j->defaults) cr_assert_eq(config_apply_text(&c, j->defaults, "job", err, sizeof err), 0, "%s", err);
    return c;
}

static config load(const job *j, const char *path) {
    config c = job_config(j);
    char err[1024];
    cr_assert_eq(config_load_file(&c, path, err, sizeof err), 0, "%s", err);
    return c;
}

Test(recipes, every_file_loads) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/configs", src_dir());
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".conf") != 0) continue;
        const job *j = job_of(e->d_name);
        cr_assert_not_null(j, "%s: the name should start with a job (classify, gpt, diffusion)", e->d_name);
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        config c = load(j, path);
        int from_file = 0;
        for (int k = 0; k < c.n; k++) from_file += strcmp(c.source[k], "file") == 0;
        cr_assert_gt(from_file, 0, "%s sets no key", path);
        config_free(&c);
        n++;
    }
    closedir(d);
    cr_assert_eq(n, 5, "expected the five recipes, found %d", n);
}

/* The default recipes change nothing, and name every key the compiled-in defaults set. */
static void check_default_recipe(const job *j, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/%s", src_dir(), name);
    config def = job_config(j), rec = load(j, path);
    for (int k = 0; k < def.n; k++) {
        cr_assert_str_eq(def.spec[k]->key, rec.spec[k]->key);
        cr_assert_eq(strtod(def.value[k], NULL), strtod(rec.value[k], NULL), "%s: %s = %s, the default is %s", name,
                     rec.spec[k]->key, rec.value[k], def.value[k]);
        if (def.spec[k]->type == CFG_STRING || def.spec[k]->type == CFG_ENUM)
            cr_assert_str_eq(def.value[k], rec.value[k], "%s: %s", name, rec.spec[k]->key);
        if (strcmp(def.source[k], "job") == 0)
            cr_assert_str_eq(rec.source[k], "file", "%s does not name %s, which %s's defaults set", name,
                             rec.spec[k]->key, j->name);
    }
    config_free(&def);
    config_free(&rec);
}

Test(recipes, defaults_equal_the_compiled_in_ones) {
    check_default_recipe(&classify_job, "classify-lenet.conf");
    check_default_recipe(&gpt_job, "gpt-shakespeare-char.conf");
    check_default_recipe(&diffusion_job, "diffusion-mnist.conf");
}

/* The other two differ from the defaults where their recipe says so. */
Test(recipes, mlp_and_gpt2) {
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/classify-mlp.conf", src_dir());
    config c = load(&classify_job, path);
    cr_assert_str_eq(config_str(&c, "model"), "mlp");
    cr_assert_eq(config_int(&c, "hidden"), 256);
    config_free(&c);
    snprintf(path, sizeof path, "%s/configs/gpt2-124m.conf", src_dir());
    c = load(&gpt_job, path);
    cr_assert_eq(config_int(&c, "n_layer"), 12);
    cr_assert_eq(config_int(&c, "n_embd"), 768);
    cr_assert_eq(config_int(&c, "block_size"), 1024);
    cr_assert_eq(config_int(&c, "vocab_size"), 50257);
    cr_assert_eq(config_int(&c, "max_steps"), 2000); /* the job's default, not restated */
    config_free(&c);
}
