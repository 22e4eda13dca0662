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
    /* a file with an error sets nothing, not even its good lines */
    cr_expect_float_eq(config_float(&c, "lr"), 1e-3, 1e-12);
    cr_expect_str_eq(config_str(&c, "model"), "lenet");
    f = fopen(path, "w");
    fprintf(f, "# a comment\n\nlr = 0.5   # trailing\nmodel=mlp\n");
    fclose(f);
    cr_assert_eq(config_load_file(&c, path, err, sizeof err), 0, "%s", err);
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
    f = fopen(path, "w");
    fprintf(f, "\xEF\xBB\xBFlr = 0.5\nmodel = mlp\n");
    fclose(f);
    cr_assert_eq(config_load_file(&c, path, err, sizeof err), 0, "%s", err);
    cr_expect_float_eq(config_float(&c, "lr"), 0.5, 1e-12, "the BOM is not part of the first key");
    unlink(path);
    config_free(&c);
}

/* writes len bytes to a fresh temporary file; returns its path (static) */
static const char *temp_file(const char *bytes, size_t len) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/dtrain-config-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
    close(fd);
    return path;
}

/* A line longer than the parser's limit is an error, not two lines: its tail (here a
 * comment's, which looks like a setting) must never be applied. */
Test(config, long_line_is_an_error) {
    size_t n = CONFIG_LINE_MAX + 100;
    char *text = malloc(n + 64);
    memset(text, '#', CONFIG_LINE_MAX);
    size_t len = CONFIG_LINE_MAX + (size_t)sprintf(text + CONFIG_LINE_MAX, "epochs = 9\nlr = 0.5\n");
    const char *path = temp_file(text, len);
    config c = make();
    char err[1024];
    cr_expect_eq(config_load_file(&c, path, err, sizeof err), -1);
    cr_expect(strstr(err, path) && strstr(err, ":1: a line of 4105 bytes, longer than the limit of 4095"), "%s", err);
    cr_expect_eq(config_int(&c, "epochs"), 5);
    cr_expect_float_eq(config_float(&c, "lr"), 1e-3, 1e-12, "nothing of the file is applied");
    unlink(path);
    /* a line of exactly the limit is fine */
    memset(text, ' ', CONFIG_LINE_MAX);
    memcpy(text, "lr = 0.25", 9);
    text[CONFIG_LINE_MAX] = '\n';
    path = temp_file(text, CONFIG_LINE_MAX + 1);
    cr_expect_eq(config_load_file(&c, path, err, sizeof err), 0, "%s", err);
    cr_expect_float_eq(config_float(&c, "lr"), 0.25, 1e-12);
    unlink(path);
    free(text);
    config_free(&c);
}

/* A NUL byte would end the line early as C strings do: "lr = 0.5\0" + anything. */
Test(config, nul_byte_is_an_error) {
    static const char text[] = "model = mlp\nlr = 0.5\0junk\nepochs = 7\n";
    const char *path = temp_file(text, sizeof text - 1);
    config c = make();
    char err[1024];
    cr_expect_eq(config_load_file(&c, path, err, sizeof err), -1);
    cr_expect(strstr(err, path) && strstr(err, ":2: a NUL byte at column 9"), "%s", err);
    cr_expect_str_eq(config_str(&c, "model"), "lenet", "nothing of the file is applied");
    cr_expect_eq(config_int(&c, "epochs"), 5);
    unlink(path);
    config_free(&c);
}

Test(config, file_over_the_limit_or_unreadable) {
    config c = make();
    char err[1024];
    cr_expect_eq(config_load_file(&c, "/dev/zero", err, sizeof err), -1);
    cr_expect(strstr(err, "/dev/zero: more than 1048576 bytes"), "%s", err);
    cr_expect_eq(config_load_file(&c, "/tmp", err, sizeof err), -1);
    cr_expect(strstr(err, "/tmp: cannot read config file"), "%s", err);
    config_free(&c);
}
