/* Config: declared keys, validation, file parsing, the resolved text. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static const cfg_spec keys[] = {
    {"lr", CFG_FLOAT, "1e-3", "0..", "learning rate"},
    {"epochs", CFG_INT, "5", "1..100", "epochs"},
    {"model", CFG_ENUM, "lenet", "lenet|mlp", "network"},
    {"out", CFG_STRING, "runs/x", NULL, "run dir"},
    {"batch", CFG_INT, "64", "1..", "batch"},
    {"beta", CFG_FLOAT, "0.9", "0..<1", "decay"},
    {"seed", CFG_INT, "0", "0..9223372036854775807", "a 64-bit value"},
    {NULL, 0, NULL, NULL, NULL},
};

static config make(void) {
    config c = {0};
    char err[256];
    cr_assert_eq(config_declare(&c, keys, err, sizeof err), 0, "%s", err);
    return c;
}

Test(config, defaults_and_overrides) {
    config c = make();
    char err[256];
    cr_expect_float_eq(config_float(&c, "lr"), 1e-3, 1e-12);
    cr_expect_eq(config_int(&c, "epochs"), 5);
    cr_assert_eq(config_set(&c, "epochs", "7", "cli", err, sizeof err), 0);
    cr_expect_eq(config_int(&c, "epochs"), 7);
    cr_assert_eq(config_set(&c, "model", "mlp", "cli", err, sizeof err), 0);
    cr_expect_str_eq(config_str(&c, "model"), "mlp");
    config_free(&c);
}

Test(config, errors_name_key_and_allowed) {
    config c = make();
    char err[1024];
    cr_expect_eq(config_set(&c, "lrr", "1", "cli", err, sizeof err), -1);
    cr_expect(strstr(err, "unknown config key 'lrr'") && strstr(err, "lr, epochs, model, out, batch, beta, seed"), "%s", err);
    cr_expect_eq(config_set(&c, "epochs", "0", "cli", err, sizeof err), -1);
    cr_expect(strstr(err, "'epochs'") && strstr(err, "1..100"), "%s", err);
    cr_expect_eq(config_set(&c, "epochs", "2.5", "cli", err, sizeof err), -1);
    cr_expect_eq(config_set(&c, "lr", "-1", "cli", err, sizeof err), -1);
    cr_expect_eq(config_set(&c, "lr", "nan", "cli", err, sizeof err), -1);
    cr_expect_eq(config_set(&c, "model", "resnet", "cli", err, sizeof err), -1);
    cr_expect(strstr(err, "lenet|mlp"), "%s", err);
    cr_expect_eq(config_set(&c, "model", "len", "cli", err, sizeof err), -1, "prefix must not match");
    cr_expect_eq(config_int(&c, "epochs"), 5, "a rejected value leaves the old one");
    config_free(&c);
}

Test(config, file_with_comments_and_errors_with_line) {
    char path[] = "/tmp/dtrain-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# a comment\n\nlr = 0.5   # trailing\nmodel=mlp\nepochs = zero\n");
    fclose(f);
    config c = make();
    char err[1024];
    cr_expect_eq(config_load_file(&c, path, err, sizeof err), -1);
    cr_expect(strstr(err, ":5:") && strstr(err, "'epochs'"), "%s", err);
    cr_expect_float_eq(config_float(&c, "lr"), 0.5, 1e-12);
    cr_expect_str_eq(config_str(&c, "model"), "mlp");
    unlink(path);
    cr_expect_eq(config_load_file(&c, path, err, sizeof err), -1);
    cr_expect(strstr(err, path), "%s", err);
    config_free(&c);
}

Test(config, resolved_text_round_trips) {
    config c = make();
    char err[256];
    config_set(&c, "lr", "0.25", "cli", err, sizeof err);
    char *s = config_to_string(&c);
    cr_expect_str_eq(s, "lr = 0.25\nepochs = 5\nmodel = lenet\nout = runs/x\nbatch = 64\nbeta = 0.9\nseed = 0\n");
    free(s);
    config_free(&c);
}

Test(config, duplicate_declaration_refused) {
    config c = make();
    char err[256];
    cr_expect_eq(config_declare(&c, keys, err, sizeof err), -1);
    cr_expect(strstr(err, "declared twice"), "%s", err);
    config_free(&c);
}

/* Integer values are used as int: one past INT_MAX would wrap (4294967360 to 64) and run a
 * different configuration than the one recorded, so an open upper bound means INT_MAX. */
Test(config, integers_bounded_by_int) {
    config c = make();
    char err[256];
    cr_expect_eq(config_set(&c, "batch", "2147483647", "cli", err, sizeof err), 0, "%s", err);
    cr_expect_eq(config_set(&c, "batch", "2147483648", "cli", err, sizeof err), -1);
    cr_expect(strstr(err, "'batch'") && strstr(err, "an integer in 1..2147483647"), "%s", err);
    cr_expect_eq(config_set(&c, "batch", "4294967360", "cli", err, sizeof err), -1);
    cr_expect_eq(config_int(&c, "batch"), 2147483647);
    /* a key that names its upper bound may go past int's range */
    cr_expect_eq(config_set(&c, "seed", "4294967296", "cli", err, sizeof err), 0, "%s", err);
    cr_expect_eq(config_int(&c, "seed"), 4294967296L);
    cr_expect_eq(config_set(&c, "seed", "9223372036854775807", "cli", err, sizeof err), 0, "%s", err);
    cr_expect_eq(config_set(&c, "seed", "9223372036854775808", "cli", err, sizeof err), -1);
    config_free(&c);
}

Test(config, half_open_and_open_ranges) {
    config c = make();
    char err[256];
    cr_expect_eq(config_set(&c, "beta", "0", "cli", err, sizeof err), 0, "%s", err);
    cr_expect_eq(config_set(&c, "beta", "0.999999", "cli", err, sizeof err), 0, "%s", err);
    cr_expect_eq(config_set(&c, "beta", "1", "cli", err, sizeof err), -1, "the upper bound of 0..<1 is excluded");
    cr_expect(strstr(err, "expected a number in 0..<1"), "%s", err);
    cr_expect_eq(config_set(&c, "beta", "-0.1", "cli", err, sizeof err), -1);
    cr_expect_eq(config_set(&c, "lr", "-1", "cli", err, sizeof err), -1);
    cr_expect(strstr(err, "expected a number >= 0"), "%s", err);
    cr_expect_eq(config_set(&c, "epochs", "100", "cli", err, sizeof err), 0, "a closed upper bound is included");
    config_free(&c);
}

Test(config, file_duplicate_key_and_byte_order_mark) {
    char path[] = "/tmp/dtrain-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "\xEF\xBB\xBFlr = 0.5\nmodel = mlp\n\nlr = 0.25\n");
    fclose(f);
    config c = make();
    char err[1024];
    cr_expect_eq(config_load_file(&c, path, err, sizeof err), -1);
    cr_expect(strstr(err, ":4: key 'lr' is already set on line 1"), "%s", err);
    cr_expect_float_eq(config_float(&c, "lr"), 0.5, 1e-12, "the BOM is not part of the first key");
    unlink(path);
    config_free(&c);
}
