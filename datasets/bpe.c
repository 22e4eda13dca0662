/* bpe.c: loading a vocab.json + merges.txt pair (jansson parses the JSON), encoding with
 * it, decoding ids back to bytes. See bpe.h. */
#include "bpe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ds_util.h"
#include "hashmap.h"
#include "pretok.h"
#include "utf8.h"

/* Pieces up to this many bytes are cached: nearly every word of ordinary text. Longer ones
 * (long runs of spaces or symbols) are rare and would crowd the cache. */
#define CACHE_PIECE_MAX 64
/* The cache is emptied when it holds this many pieces (about 20 MB with their ids). */
#define CACHE_MAX_PIECES (1u << 18)

typedef struct {
    int32_t id, prev, next; /* prev/next: neighbours in the piece, -1 at the ends */
} sym;

struct bpe {
    int vocab;
    long nmerges;
    int32_t byte_id[256]; /* the id of each single byte's token, -1 if the vocabulary lacks it */
    char *bytes;          /* every token's bytes, concatenated */
    size_t *off;          /* [vocab + 1]: token id's bytes are bytes[off[id], off[id + 1]) */
    u64map merges;        /* (left << 32 | right) → (rank << 32 | merged id) */
    /* encoding state: the piece cache and scratch buffers */
    strmap cache;         /* piece → (offset into cache_ids) << 8 | count */
    idvec cache_ids;
    unsigned char *clean; /* the text with invalid UTF-8 replaced */
    size_t clean_cap;
    sym *syms;
    uint64_t *heap; /* (rank << 32 | position) of the candidate merges of a piece */
    size_t piece_cap, heap_cap;
};

/* ---- GPT-2's byte ↔ character map ------------------------------------------------------ */

static int printable_byte(unsigned b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; }

uint32_t bpe_byte_char(unsigned char byte) {
    if (printable_byte(byte)) return byte;
    /* the others, in byte order, take U+0100, U+0101, ...: 33 below '!', 34 from DEL to
     * NBSP, and the soft hyphen */
    unsigned n = byte <= 32 ? byte : byte <= 160 ? 33u + (byte - 127u) : 67u;
    return 256u + n;
}

int bpe_char_byte(uint32_t cp) {
    if (cp < 256) return printable_byte(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    unsigned n = cp - 256;
    return n < 33 ? (int)n : n < 67 ? (int)(127 + n - 33) : 173;
}

/* ---- id arrays ------------------------------------------------------------------------- */

int idvec_push(idvec *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4096;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return 0;
}

void idvec_free(idvec *a) {
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

/* ---- loading vocab.json ------------------------------------------------------------------ */

typedef struct {
    const char *vname, *mname;
    char *err;
    size_t errlen;
    strmap ids; /* token string as written in vocab.json → id */
} loader;

/* The bytes a token stands for: its characters mapped back through GPT-2's table. A token
 * with a character outside the table (a special token such as "<|endoftext|>" is inside it;
 * one written with spaces would not be) stands for its own UTF-8. */
static size_t token_bytes(const char *key, size_t len, char *out, int *special) {
    const unsigned char *s = (const unsigned char *)key;
    size_t n = 0;
    *special = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = utf8_decode(s + i, len - i, &cp), byte = k ? bpe_char_byte(cp) : -1;
        if (byte < 0) {
            memcpy(out, key, len);
            *special = 1;
            return len;
        }
        out[n++] = (char)byte;
        i += (size_t)k;
    }
    return n;
}

static int check_ids(loader *l, json_t *root, int *vocab) {
    if (!json_is_object(root) || json_object_size(root) == 0)
        return ds_fail(l->err, l->errlen, "%s: expected a non-empty JSON object mapping each token to its id",
                       l->vname);
    const char *key;
    json_t *v;
    json_int_t max = -1;
    json_object_foreach(root, key, v) {
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id >= BPE_MAX_VOCAB)
            return ds_fail(l->err, l->errlen, "%s: token \"%.40s\": expected an integer id in [0, %d)%s", l->vname,
                           key, BPE_MAX_VOCAB, id >= BPE_MAX_VOCAB ? " (the largest vocabulary dtrain takes)" : "");
        if (id > max) max = id;
    }
    *vocab = (int)max + 1;
    return 0;
}

/* Fills b->bytes/off from the object (ids checked) and l->ids for the merges. */
static int store_tokens(loader *l, json_t *root, bpe *b) {
    size_t total = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) total += strlen(key);
    size_t *len = calloc((size_t)b->vocab, sizeof *len); /* 0 also for special tokens */
    char **src = calloc((size_t)b->vocab, sizeof *src);
    b->off = malloc(((size_t)b->vocab + 1) * sizeof *b->off);
    b->bytes = malloc(total + 1);
    int rc = len && src && b->off && b->bytes ? 0 : ds_fail(l->err, l->errlen, "%s: out of memory", l->vname);
    /* bytes are written in id order, so each id's first pass records where its key is */
    json_object_foreach(root, key, v) {
        if (rc) break;
        int32_t id = (int32_t)json_integer_value(v), added;
        if (src[id])
            rc = ds_fail(l->err, l->errlen, "%s: id %d is given to both \"%.40s\" and \"%.40s\": expected one "
                         "token per id", l->vname, (int)id, src[id], key);
        src[id] = (char *)key;
        int64_t *slot = rc ? NULL : strmap_insert(&l->ids, key, strlen(key), &added);
        if (!rc && !slot) rc = ds_fail(l->err, l->errlen, "%s: out of memory", l->vname);
        if (slot) *slot = id;
    }
    size_t at = 0;
    for (int id = 0; rc == 0 && id < b->vocab; id++) {
        b->off[id] = at;
        int special = 0;
        if (src[id]) at += token_bytes(src[id], strlen(src[id]), b->bytes + at, &special);
        len[id] = special ? 0 : at - b->off[id];
    }
    if (rc == 0) b->off[b->vocab] = at;
    for (int i = 0; rc == 0 && i < 256; i++) b->byte_id[i] = -1;
    for (int id = 0; rc == 0 && id < b->vocab; id++)
        if (len[id] == 1 && b->byte_id[(unsigned char)b->bytes[b->off[id]]] < 0)
            b->byte_id[(unsigned char)b->bytes[b->off[id]]] = id;
    free(len);
    free(src);
    return rc;
}

static int parse_vocab(loader *l, const char *text, size_t n, bpe *b) {
    json_error_t je;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return ds_fail(l->err, l->errlen, "%s: not valid JSON at line %d column %d: %s", l->vname, je.line,
                       je.column, je.text);
    int rc = check_ids(l, root, &b->vocab);
    if (rc == 0) rc = store_tokens(l, root, b);
    json_decref(root);
    return rc;
}

/* ---- loading merges.txt ------------------------------------------------------------------ */

static int lookup(loader *l, const char *tok, size_t len, long line, int32_t *id) {
    int64_t *v = strmap_find(&l->ids, tok, len);
    if (!v)
        return ds_fail(l->err, l->errlen, "%s: line %ld: token \"%.*s\" is not in %s", l->mname, line,
                       len > 60 ? 60 : (int)len, tok, l->vname);
    *id = (int32_t)*v;
    return 0;
}

static int parse_merge(loader *l, bpe *b, const char *s, size_t n, long line, char *joined) {
    const char *sp = memchr(s, ' ', n);
    if (!sp || sp == s || sp == s + n - 1 || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
        return ds_fail(l->err, l->errlen, "%s: line %ld: expected two tokens separated by one space", l->mname,
                       line);
    size_t la = (size_t)(sp - s), lb = n - la - 1;
    int32_t a = 0, c = 0, merged = 0;
    memcpy(joined, s, la);
    memcpy(joined + la, sp + 1, lb);
    if (lookup(l, s, la, line, &a) || lookup(l, sp + 1, lb, line, &c) || lookup(l, joined, la + lb, line, &merged))
        return -1;
    /* a pair listed twice keeps its last rank, as the tokenizers package does */
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)c;
    if (u64map_put(&b->merges, key, (uint64_t)b->nmerges << 32 | (uint32_t)merged) != 0)
        return ds_fail(l->err, l->errlen, "%s: out of memory", l->mname);
    b->nmerges++;
    return 0;
}

static int parse_merges(loader *l, const char *text, size_t n, bpe *b) {
    char *joined = malloc(n + 1);
    if (!joined) return ds_fail(l->err, l->errlen, "%s: out of memory", l->mname);
    int rc = 0;
    long line = 0;
    for (size_t i = 0; rc == 0 && i < n;) {
        const char *nl = memchr(text + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - text) : n, len = end - i;
        line++;
        if (len > 0 && text[i + len - 1] == '\r') len--;
        int header = line == 1 && len >= 8 && memcmp(text + i, "#version", 8) == 0;
        if (!header && len > 0) rc = parse_merge(l, b, text + i, len, line, joined);
        i = end + 1;
    }
    free(joined);
    return rc;
}

/* ---- public: loading -------------------------------------------------------------------- */

bpe *bpe_parse(const char *vocab_json, size_t vocab_len, const char *merges_txt, size_t merges_len,
               const char *vocab_name, const char *merges_name, char *err, size_t errlen) {
    bpe *b = calloc(1, sizeof *b);
    if (!b) {
        ds_fail(err, errlen, "%s: out of memory", vocab_name);
        return NULL;
    }
    loader l = {vocab_name, merges_name, err, errlen, {0}};
    strmap_init(&l.ids);
    u64map_init(&b->merges);
    strmap_init(&b->cache);
    int rc = parse_vocab(&l, vocab_json, vocab_len, b);
    if (rc == 0) rc = parse_merges(&l, merges_txt, merges_len, b);
    strmap_free(&l.ids);
    if (rc != 0) {
        bpe_free(b);
        return NULL;
    }
    return b;
}

bpe *bpe_load_dir(const char *dir, char *err, size_t errlen) {
    size_t dl = strlen(dir) + 16, vl = 0, ml = 0;
    char *vpath = malloc(dl), *mpath = malloc(dl);
    bpe *b = NULL;
    if (!vpath || !mpath) {
        ds_fail(err, errlen, "%s: out of memory", dir);
    } else {
        snprintf(vpath, dl, "%s/vocab.json", dir);
        snprintf(mpath, dl, "%s/merges.txt", dir);
        char *v = ds_read_file(vpath, &vl, err, errlen), *m = v ? ds_read_file(mpath, &ml, err, errlen) : NULL;
        if (v && m) b = bpe_parse(v, vl, m, ml, vpath, mpath, err, errlen);
        free(v);
        free(m);
    }
    free(vpath);
    free(mpath);
    return b;
}

void bpe_free(bpe *b) {
    if (!b) return;
    free(b->bytes);
    free(b->off);
    u64map_free(&b->merges);
    strmap_free(&b->cache);
    idvec_free(&b->cache_ids);
    free(b->clean);
    free(b->syms);
    free(b->heap);
    free(b);
}

int bpe_vocab_size(const bpe *b) { return b->vocab; }
long bpe_merge_count(const bpe *b) { return b->nmerges; }

const char *bpe_token_bytes(const bpe *b, int32_t id, int *len) {
    if (id < 0 || id >= b->vocab) {
        *len = 0;
        return NULL;
    }
    *len = (int)(b->off[id + 1] - b->off[id]);
    return b->bytes + b->off[id];
}

/* ---- encoding ----------------------------------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= last) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

/* The merge of the pair that starts at symbol i, pushed if the vocabulary has one. */
static void push_pair(const bpe *b, size_t *nh, int32_t i) {
    if (i < 0 || b->syms[i].next < 0) return;
    uint64_t key = (uint64_t)(uint32_t)b->syms[i].id << 32 | (uint32_t)b->syms[b->syms[i].next].id;
    uint64_t *m = u64map_find(&b->merges, key);
    if (m) heap_push(b->heap, nh, (*m & 0xFFFFFFFF00000000ull) | (uint32_t)i);
}

/* Applies merges to one piece, lowest rank first and leftmost among equals (the order of
 * the tokenizers package), and appends the resulting ids. A merge that no longer applies
 * (a neighbour changed) is skipped when popped: a rank names one pair, so an entry whose
 * rank still matches the pair at its position is current. */
static int merge_piece(bpe *b, const unsigned char *p, size_t n, idvec *out) {
    if (grow((void **)&b->syms, &b->piece_cap, n, sizeof *b->syms) != 0) return -1;
    if (grow((void **)&b->heap, &b->heap_cap, 3 * n + 1, sizeof *b->heap) != 0) return -1;
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) /* a byte without a token is dropped, as that package does */
        if (b->byte_id[p[i]] >= 0) {
            b->syms[m] = (sym){b->byte_id[p[i]], m - 1, -1};
            m++;
        }
    for (int32_t i = 0; i + 1 < m; i++) b->syms[i].next = i + 1;
    size_t nh = 0;
    for (int32_t i = 0; i + 1 < m; i++) push_pair(b, &nh, i);
    while (nh > 0) {
        uint64_t top = heap_pop(b->heap, &nh);
        int32_t i = (int32_t)(top & 0xFFFFFFFF);
        sym *s = &b->syms[i];
        if (s->id < 0 || s->next < 0) continue;
        uint64_t key = (uint64_t)(uint32_t)s->id << 32 | (uint32_t)b->syms[s->next].id;
        uint64_t *mg = u64map_find(&b->merges, key);
        if (!mg || (*mg >> 32) != (top >> 32)) continue;
        sym *r = &b->syms[s->next];
        s->id = (int32_t)(*mg & 0xFFFFFFFF);
        r->id = -1;
        s->next = r->next;
        if (r->next >= 0) b->syms[r->next].prev = i;
        push_pair(b, &nh, s->prev);
        push_pair(b, &nh, i);
    }
    for (int32_t i = m > 0 ? 0 : -1; i >= 0; i = b->syms[i].next)
        if (idvec_push(out, b->syms[i].id) != 0) return -1;
    return 0;
}

static int encode_piece(bpe *b, const unsigned char *p, size_t n, idvec *out) {
    if (n > CACHE_PIECE_MAX) return merge_piece(b, p, n, out);
    int64_t *hit = strmap_find(&b->cache, p, n);
    if (hit) {
        size_t off = (size_t)(*hit >> 8), cnt = (size_t)(*hit & 0xFF);
        for (size_t k = 0; k < cnt; k++)
            if (idvec_push(out, b->cache_ids.v[off + k]) != 0) return -1;
        return 0;
    }
    size_t start = out->n;
    if (merge_piece(b, p, n, out) != 0) return -1;
    if (b->cache.n >= CACHE_MAX_PIECES) {
        strmap_clear(&b->cache);
        b->cache_ids.n = 0;
    }
    size_t off = b->cache_ids.n, cnt = out->n - start;
    for (size_t k = 0; k < cnt; k++)
        if (idvec_push(&b->cache_ids, out->v[start + k]) != 0) return -1;
    int added;
    int64_t *slot = strmap_insert(&b->cache, p, n, &added);
    if (!slot) return -1;
    *slot = (int64_t)off << 8 | (int64_t)cnt;
    return 0;
}

/* The text itself when it is valid UTF-8; else a copy with each invalid sequence replaced
 * by U+FFFD (EF BF BD). */
static const unsigned char *valid_text(bpe *b, const unsigned char *s, size_t len, size_t *out_len) {
    size_t i = 0;
    uint32_t cp;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int k = utf8_decode(s + i, len - i, &cp);
        if (k == 0) break;
        i += (size_t)k;
    }
    *out_len = len;
    if (i == len) return s;
    if (grow((void **)&b->clean, &b->clean_cap, 3 * len, 1) != 0) return NULL; /* 1 byte → at most 3 */
    memcpy(b->clean, s, i);
    size_t o = i;
    while (i < len) {
        int k = utf8_decode_lossy(s + i, len - i, &cp);
        o += (size_t)utf8_encode(cp, (char *)b->clean + o);
        i += (size_t)k;
    }
    *out_len = o;
    return b->clean;
}

int bpe_encode(bpe *b, const char *text, size_t len, idvec *out) {
    const unsigned char *s = valid_text(b, (const unsigned char *)text, len, &len);
    if (!s) return -1;
    for (size_t i = 0; i < len;) {
        size_t j = pretok_next(s, len, i);
        if (encode_piece(b, s + i, j - i, out) != 0) return -1;
        i = j;
    }
    return 0;
}
