#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int find(const config *c, const char *key) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->spec[i]->key, key) == 0) return i;
    return -1;
}

static int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* "lo..hi" bounds, "lo..<hi" for an upper bound left out; either side may be empty for an
 * open bound. Integer keys with an open upper bound stop at INT_MAX (see validate). */
static int in_range(const char *allowed, double v) {
    if (!allowed) return 1;
    const char *dots = strstr(allowed, "..");
    if (!dots) return 1;
    char lo[64] = {0};
    size_t n = (size_t)(dots - allowed);
    if (n >= sizeof lo) return 1;
    memcpy(lo, allowed, n);
    double b;
    if (n && parse_double(lo, &b) == 0 && v < b) return 0;
    const char *hi = dots + 2;
    int open = *hi == '<';
    if (open) hi++;
    if (*hi && parse_double(hi, &b) == 0 && (open ? v >= b : v > b)) return 0;
    return 1;
}

/* Whether "lo..hi" names its upper bound: an integer key bounded that way (the seed, a
 * 64-bit value) may go past int's range; one left open stops at INT_MAX. */
static int explicit_upper(const char *allowed) {
    const char *dots = allowed ? strstr(allowed, "..") : NULL;
    return dots && dots[2] && !(dots[2] == '<' && !dots[3]);
}

/* What the error message says is allowed: "an integer in 1..2147483647", "a number in
 * 0..<1", "a number >= 0". An integer key's open upper bound is INT_MAX: values are used as
 * int, and a larger one would wrap to a different number instead of failing. */
static void describe_allowed(const cfg_spec *s, char *buf, size_t len) {
    const char *what = s->type == CFG_INT ? "an integer" : "a number";
    const char *dots = s->allowed ? strstr(s->allowed, "..") : NULL;
    if (!dots) {
        snprintf(buf, len, "%s%s%s", what, s->type == CFG_INT ? " in " : "",
                 s->type == CFG_INT ? "-2147483648..2147483647" : "");
        return;
    }
    int nlo = (int)(dots - s->allowed);
    const char *hi = dots + 2;
    if (*hi) snprintf(buf, len, "%s in %s", what, s->allowed);
    else if (s->type == CFG_INT) snprintf(buf, len, "%s in %.*s..%d", what, nlo, s->allowed, INT_MAX);
    else snprintf(buf, len, "%s >= %.*s", what, nlo, s->allowed);
}

static int enum_ok(const char *allowed, const char *v) {
    size_t len = strlen(v);
    for (const char *p = allowed; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, v, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

static int validate(const cfg_spec *s, const char *v, char *err, size_t errlen) {
    long l;
    double d;
    char allowed[128];
    switch (s->type) {
    case CFG_INT:
        if (parse_long(v, &l) != 0 || (!explicit_upper(s->allowed) && (l < INT_MIN || l > INT_MAX)) ||
            !in_range(s->allowed, (double)l)) {
            describe_allowed(s, allowed, sizeof allowed);
            snprintf(err, errlen, "bad value '%s' for key '%s': expected %s", v, s->key, allowed);
            return -1;
        }
        return 0;
    case CFG_FLOAT:
        if (parse_double(v, &d) != 0 || !in_range(s->allowed, d)) {
            describe_allowed(s, allowed, sizeof allowed);
            snprintf(err, errlen, "bad value '%s' for key '%s': expected %s", v, s->key, allowed);
            return -1;
        }
        return 0;
    case CFG_ENUM:
        if (!enum_ok(s->allowed, v)) {
            snprintf(err, errlen, "bad value '%s' for key '%s': expected one of %s", v, s->key,
                     s->allowed);
            return -1;
        }
        return 0;
    case CFG_STRING:
        return 0;
    }
    return 0;
}

int config_declare(config *c, const cfg_spec *specs, char *err, size_t errlen) {
    for (const cfg_spec *s = specs; s->key; s++) {
        if (find(c, s->key) >= 0) {
            snprintf(err, errlen, "config key '%s' declared twice", s->key);
            return -1;
        }
        if (c->n == CFG_MAX_KEYS) {
            snprintf(err, errlen, "too many config keys (max %d)", CFG_MAX_KEYS);
            return -1;
        }
        if (validate(s, s->def, err, errlen) != 0) return -1;
        c->spec[c->n] = s;
        c->value[c->n] = xstrdup(s->def);
        snprintf(c->source[c->n], sizeof c->source[0], "default");
        c->n++;
    }
    return 0;
}

static void list_keys(const config *c, char *buf, size_t len) {
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < c->n && off + 2 < len; i++) {
        int w = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", c->spec[i]->key);
        if (w < 0) break;
        off += (size_t)w;
    }
}

int config_set(config *c, const char *key, const char *value, const char *source, char *err,
               size_t errlen) {
    int i = find(c, key);
    if (i < 0) {
        char keys[1024];
        list_keys(c, keys, sizeof keys);
        snprintf(err, errlen, "unknown config key '%s' (known keys: %s)", key, keys);
        return -1;
    }
    if (validate(c->spec[i], value, err, errlen) != 0) return -1;
    free(c->value[i]);
    c->value[i] = xstrdup(value);
    snprintf(c->source[i], sizeof c->source[0], "%s", source);
    return 0;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

/* The whole file, read before any of it is applied: NUL-terminated, malloc'd, *len bytes
 * (NULs inside included). NULL with err when it cannot be read or is over the limit. */
static char *slurp(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open config file: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = xmalloc(CONFIG_FILE_MAX + 2);
    size_t n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    int bad = ferror(f), e = errno;
    fclose(f);
    if (bad || n > CONFIG_FILE_MAX) {
        if (bad) snprintf(err, errlen, "%s: cannot read config file: %s", path, strerror(e));
        else snprintf(err, errlen, "%s: more than %d bytes, expected a config file", path, CONFIG_FILE_MAX);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* A file is applied whole or not at all: every line is parsed and every value checked
 * first (a NUL byte, a line longer than CONFIG_LINE_MAX, a line without '=', an unknown
 * key, a bad value or a key set twice stops it, naming the line), then all are set. */
int config_load_file(config *c, const char *path, char *err, size_t errlen) {
    size_t len;
    char *buf = slurp(path, &len, err, errlen);
    if (!buf) return -1;
    typedef struct {
        int k;
        const char *val;
    } assignment;
    assignment *set = xmalloc(sizeof *set * CFG_MAX_KEYS);
    int nset = 0, lineno = 0, rc = 0;
    int set_at[CFG_MAX_KEYS] = {0}; /* the line that set each key, to refuse a second one */
    for (size_t at = 0; at < len && rc == 0;) {
        lineno++;
        char *line = buf + at, *nl = memchr(line, '\n', len - at);
        size_t n = nl ? (size_t)(nl - line) : len - at;
        at += n + (nl ? 1 : 0);
        /* a NUL would end the line early, as C strings do, and apply only its start */
        const char *nul = memchr(line, '\0', n);
        if (nul) {
            snprintf(err, errlen, "%s:%d: a NUL byte at column %d, expected text", path, lineno, (int)(nul - line) + 1);
            rc = -1;
            break;
        }
        if (n > CONFIG_LINE_MAX) {
            snprintf(err, errlen, "%s:%d: a line of %zu bytes, longer than the limit of %d", path, lineno, n,
                     CONFIG_LINE_MAX);
            rc = -1;
            break;
        }
        line[n] = '\0';
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = line;
        /* a UTF-8 byte-order mark, as some editors write, is not part of the first key */
        if (lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3;
        s = trim(s);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected 'key = value', got '%.200s'", path, lineno, s);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        int k = find(c, key);
        char e2[768];
        if (k < 0) {
            config_set(c, key, val, "file", e2, sizeof e2); /* fails: its message lists the keys */
            snprintf(err, errlen, "%s:%d: %s", path, lineno, e2);
            rc = -1;
        } else if (set_at[k]) {
            /* two values for one key in one file: which was meant is anyone's guess */
            snprintf(err, errlen, "%s:%d: key '%s' is already set on line %d", path, lineno, key, set_at[k]);
            rc = -1;
        } else if (validate(c->spec[k], val, e2, sizeof e2) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, e2);
            rc = -1;
        } else {
            set_at[k] = lineno;
            set[nset++] = (assignment){k, val};
        }
    }
    for (int i = 0; rc == 0 && i < nset; i++) {
        free(c->value[set[i].k]);
        c->value[set[i].k] = xstrdup(set[i].val);
        snprintf(c->source[set[i].k], sizeof c->source[0], "file");
    }
    free(set);
    free(buf);
    return rc;
}

/* `key = value` lines from a string (job defaults, a checkpoint's config). */
int config_apply_text(config *c, const char *text, const char *source, char *err, size_t errlen) {
    char *copy = xstrdup(text), *save = NULL;
    int rc = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#') continue;
        char *k = line, *v = eq + 1;
        *eq = '\0';
        while (*k == ' ') k++;
        for (char *e = eq - 1; e >= k && *e == ' '; e--) *e = '\0';
        while (*v == ' ') v++;
        for (char *e = v + strlen(v) - 1; e >= v && (*e == ' ' || *e == '\r'); e--) *e = '\0';
        if (config_set(c, k, v, source, err, errlen) != 0) {
            rc = -1;
            break;
        }
    }
    free(copy);
    return rc;
}

int config_has(const config *c, const char *key) { return find(c, key) >= 0; }

static int must_find(const config *c, const char *key) {
    int i = find(c, key);
    if (i < 0) DIE("internal error: config key '%s' was never declared", key);
    return i;
}

const char *config_str(const config *c, const char *key) { return c->value[must_find(c, key)]; }

long config_int(const config *c, const char *key) {
    return strtol(c->value[must_find(c, key)], NULL, 10);
}

double config_float(const config *c, const char *key) {
    return strtod(c->value[must_find(c, key)], NULL);
}

void config_write(const config *c, FILE *f) {
    for (int i = 0; i < c->n; i++) fprintf(f, "%s = %s\n", c->spec[i]->key, c->value[i]);
}

char *config_to_string(const config *c) {
    size_t cap = 64;
    for (int i = 0; i < c->n; i++) cap += strlen(c->spec[i]->key) + strlen(c->value[i]) + 5;
    char *s = xmalloc(cap);
    size_t off = 0;
    for (int i = 0; i < c->n; i++)
        off += (size_t)snprintf(s + off, cap - off, "%s = %s\n", c->spec[i]->key, c->value[i]);
    s[off] = '\0';
    return s;
}

void config_print_help(const config *c, FILE *f) {
    for (int i = 0; i < c->n; i++) {
        const cfg_spec *s = c->spec[i];
        const char *v = c->value[i]; /* the job's default where it overrides the key's */
        fprintf(f, "  --%-18s %s (default %s%s%s)\n", s->key, s->help, v[0] ? v : "''",
                s->allowed ? "; " : "", s->allowed ? s->allowed : "");
    }
}

void config_free(config *c) {
    for (int i = 0; i < c->n; i++) free(c->value[i]);
    c->n = 0;
}
