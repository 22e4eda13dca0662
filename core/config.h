/* config.h: `key = value` configuration with declared keys.
 *
 * Every key is declared once (name, type, default, allowed values or range, help). Values
 * come from defaults, then a config file, then `--key value` on the command line; each is
 * validated when set, and an unknown key or bad value is a one-line error naming the key
 * and what is allowed. The resolved config is written to the run directory as text. */
#ifndef DTRAIN_CONFIG_H
#define DTRAIN_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum { CFG_INT, CFG_FLOAT, CFG_STRING, CFG_ENUM } cfg_type;

typedef struct cfg_spec {
    const char *key;
    cfg_type type;
    const char *def;     /* default value as text */
    const char *allowed; /* CFG_ENUM: "a|b|c"; CFG_INT/CFG_FLOAT: "min..max", "min..<max" (max
                          * excluded), either bound may be left out; or NULL. CFG_INT values
                          * without an upper bound must also fit in an int. */
    const char *help;
} cfg_spec;

#define CFG_MAX_KEYS 128
/* Limits of a config file: a longer line, a bigger file, or a NUL byte is an error. */
#define CONFIG_LINE_MAX 4095
#define CONFIG_FILE_MAX (1 << 20)

typedef struct config {
    const cfg_spec *spec[CFG_MAX_KEYS];
    char *value[CFG_MAX_KEYS];
    char source[CFG_MAX_KEYS][16]; /* "default", "file", "cli" */
    int n;
} config;

/* Declares a table of keys ending with a {NULL} entry. May be called several times
 * (trainer keys, then job keys). Returns -1 with err if a key is declared twice. */
int config_declare(config *c, const cfg_spec *specs, char *err, size_t errlen);
/* Sets one key; -1 with err ("bad value 'x' for key 'lr': expected a number in 0..10"). */
int config_set(config *c, const char *key, const char *value, const char *source, char *err,
               size_t errlen);
/* Reads a `key = value` file ('#' comments, blank lines). Errors name file and line; a
 * file with an error sets nothing (lines over CONFIG_LINE_MAX bytes, NUL bytes and files
 * over CONFIG_FILE_MAX are errors too). */
int config_load_file(config *c, const char *path, char *err, size_t errlen);
/* `key = value` lines from a string (job defaults, a checkpoint's config): lines without
 * '=' and lines starting with '#' are skipped. -1 with err at the first bad value. */
int config_apply_text(config *c, const char *text, const char *source, char *err, size_t errlen);

int config_has(const config *c, const char *key);
const char *config_str(const config *c, const char *key);
long config_int(const config *c, const char *key);
double config_float(const config *c, const char *key);

/* The resolved config, one `key = value` line per key, in declaration order. */
void config_write(const config *c, FILE *f);
/* Same as text in a malloc'd string (for checkpoints). */
char *config_to_string(const config *c);
/* Help: every key with default, allowed values and help text. */
void config_print_help(const config *c, FILE *f);
void config_free(config *c);

#endif
