/* bpe_train.c: `dtrain prepare bpe`: learns a byte-level BPE vocabulary from text and
 * writes it as vocab.json + merges.txt (see bpe.h for the scheme).
 *
 * 1. Count: the inputs are streamed (text_stream.h) and split by GPT-2's pre-tokenizer;
 *    each distinct piece is counted. Memory is bounded by max_words distinct pieces: when
 *    the table fills, the rarest pieces are dropped (count 1, then 2, ... until at most half
 *    remain), so a corpus of any size is counted in bounded memory, at the price of the
 *    counts of pieces too rare to matter for the merges.
 * 2. Merge: the 256 byte tokens to start with; then, repeatedly, the most frequent
 *    adjacent pair of tokens over all pieces (weighted by count; ties: the smaller pair of
 *    ids) becomes a new token, until the vocabulary holds vocab_size tokens (the last id is
 *    the special token <|endoftext|>, as in GPT-2) or no pair occurs twice. Each pair
 *    keeps the list of pieces it occurs in, so a merge only revisits those pieces. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "bpe.h"
#include "ds_util.h"
#include "hashmap.h"
#include "pretok.h"
#include "prepare.h"
#include "text_stream.h"
#include "tokens.h"
#include "utf8.h"

#define END_OF_TEXT "<|endoftext|>"

typedef struct {
    const char *out;
    char *err;
    size_t errlen;
} job;

/* ---- 1. counting pieces ------------------------------------------------------------------ */

/* Keeps the pieces seen more than `floor` times; the rest are forgotten. */
static int prune(strmap *words, int64_t floor) {
    strmap kept;
    strmap_init(&kept);
    for (size_t i = 0; i < words->n; i++) {
        const strmap_entry *e = &words->e[i];
        if (e->val <= floor) continue;
        int added;
        int64_t *v = strmap_insert(&kept, words->keys + e->off, e->len, &added);
        if (!v) {
            strmap_free(&kept);
            return -1;
        }
        *v = e->val;
    }
    strmap_free(words);
    *words = kept;
    return 0;
}

static int shrink(const job *j, strmap *words, size_t max_words) {
    for (int64_t floor = 1; words->n > max_words / 2; floor++)
        if (prune(words, floor) != 0) return ds_fail(j->err, j->errlen, "%s: out of memory counting words", j->out);
    return 0;
}

static int count_chunk(const job *j, strmap *words, const char *chunk, size_t len, size_t max_words,
                       unsigned char **clean, size_t *clean_cap) {
    /* invalid UTF-8 counts as U+FFFD, as the encoder will read it */
    if (*clean_cap < 3 * len) {
        free(*clean);
        *clean_cap = 3 * len;
        if (!(*clean = malloc(*clean_cap))) return ds_fail(j->err, j->errlen, "%s: out of memory", j->out);
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += (size_t)utf8_decode_lossy((const unsigned char *)chunk + i, len - i, &cp);
        n += (size_t)utf8_encode(cp, (char *)*clean + n);
    }
    for (size_t i = 0; i < n;) {
        size_t e = pretok_next(*clean, n, i);
        int added;
        int64_t *c = strmap_insert(words, *clean + i, e - i, &added);
        if (!c) return ds_fail(j->err, j->errlen, "%s: out of memory counting words", j->out);
        (*c)++;
        i = e;
        if (words->n >= max_words && shrink(j, words, max_words) != 0) return -1;
    }
    return 0;
}

static int count_words(const job *j, const char *const *in, int nin, size_t max_words, strmap *words) {
    text_stream *ts = text_stream_open(in, nin, TEXT_CHECK_EMPTY | TEXT_CHECK_NUL, j->err, j->errlen);
    if (!ts) return PREPARE_BAD_INPUT;
    const char *chunk;
    size_t len, cap = 0;
    unsigned char *clean = NULL;
    int r, rc = 0;
    uint64_t next_report = 64u << 20;
    while (rc == 0 && (r = text_stream_next(ts, &chunk, &len, j->err, j->errlen)) > 0) {
        rc = count_chunk(j, words, chunk, len, max_words, &clean, &cap) ? PREPARE_FAILED : 0;
        if (text_stream_done(ts) >= next_report) {
            printf("bpe: read %.1f MB, %zu distinct words\n", (double)text_stream_done(ts) / 1e6, words->n);
            fflush(stdout);
            next_report += 64u << 20;
        }
    }
    if (rc == 0 && r < 0) rc = PREPARE_BAD_INPUT;
    if (rc == 0)
        printf("bpe: read %.1f MB from %d file%s, %zu distinct words\n", (double)text_stream_done(ts) / 1e6,
               text_stream_file_count(ts), text_stream_file_count(ts) == 1 ? "" : "s", words->n);
    free(clean);
    text_stream_close(ts);
    return rc;
}

/* ---- 2. merging ---------------------------------------------------------------------------- */

typedef struct {
    int32_t a, b;
    int64_t count;
    uint32_t *where; /* pieces that held the pair when it was last seen (may repeat) */
    uint32_t nwhere, capwhere;
    uint32_t touched; /* the merge that last counted it among the new token's pairs */
} pair;

typedef struct {
    int64_t count;
    uint32_t pair;
} heap_entry;

typedef struct {
    /* pieces: symbols in one arena */
    int32_t *sym;
    size_t *start;
    uint32_t *len;
    int64_t *wcount;
    uint32_t *stamp; /* the merge that last rewrote the piece */
    size_t nwords;
    /* pairs */
    u64map index; /* (a << 32 | b) → pair index */
    pair *pairs;
    size_t npairs, cappairs;
    heap_entry *heap;
    size_t nheap, capheap;
    /* the vocabulary */
    strmap tokens;    /* token string (mapped characters) → id */
    char **tok;       /* [vocab] strings */
    int32_t (*merges)[2];
    int nvocab, nmerges, capmerges;
    uint32_t *fresh; /* the pairs of the latest merge's token, to push on the heap */
    size_t nfresh, capfresh;
} trainer_state;

static int before(const trainer_state *s, heap_entry x, heap_entry y) {
    if (x.count != y.count) return x.count > y.count;
    const pair *p = &s->pairs[x.pair], *q = &s->pairs[y.pair];
    return p->a != q->a ? p->a < q->a : p->b < q->b;
}

static int heap_push(trainer_state *s, heap_entry e) {
    if (s->nheap == s->capheap) {
        size_t cap = s->capheap ? s->capheap * 2 : 4096;
        heap_entry *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return -1;
        s->heap = h;
        s->capheap = cap;
    }
    size_t i = s->nheap++;
    while (i > 0 && before(s, e, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
    return 0;
}

static heap_entry heap_pop(trainer_state *s) {
    heap_entry top = s->heap[0], last = s->heap[--s->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->nheap) break;
        if (c + 1 < s->nheap && before(s, s->heap[c + 1], s->heap[c])) c++;
        if (!before(s, s->heap[c], last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    s->heap[i] = last;
    return top;
}

/* The index of pair (a, b), created with count 0 if new; -1 when out of memory. */
static long pair_of(trainer_state *s, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b, *v = u64map_find(&s->index, key);
    if (v) return (long)*v;
    if (s->npairs == s->cappairs) {
        size_t cap = s->cappairs ? s->cappairs * 2 : 4096;
        pair *p = realloc(s->pairs, cap * sizeof *p);
        if (!p) return -1;
        s->pairs = p;
        s->cappairs = cap;
    }
    s->pairs[s->npairs] = (pair){a, b, 0, NULL, 0, 0, 0};
    if (u64map_put(&s->index, key, s->npairs) != 0) return -1;
    return (long)s->npairs++;
}

static int add_where(pair *p, uint32_t w) {
    if (p->nwhere > 0 && p->where[p->nwhere - 1] == w) return 0;
    if (p->nwhere == p->capwhere) {
        uint32_t cap = p->capwhere ? p->capwhere * 2 : 4;
        uint32_t *n = realloc(p->where, cap * sizeof *n);
        if (!n) return -1;
        p->where = n;
        p->capwhere = cap;
    }
    p->where[p->nwhere++] = w;
    return 0;
}

static int note_fresh(trainer_state *s, uint32_t p) {
    if (s->pairs[p].touched == (uint32_t)s->nmerges) return 0;
    s->pairs[p].touched = (uint32_t)s->nmerges;
    if (s->nfresh == s->capfresh) {
        size_t cap = s->capfresh ? s->capfresh * 2 : 1024;
        uint32_t *f = realloc(s->fresh, cap * sizeof *f);
        if (!f) return -1;
        s->fresh = f;
        s->capfresh = cap;
    }
    s->fresh[s->nfresh++] = p;
    return 0;
}

/* Adds sign * the piece's count to each of its pairs. Adding with track_id >= 0 (after a
 * merge made token track_id) records the piece in the lists of the pairs that hold the
 * new token, and those pairs in s->fresh; with track_id < 0 (the first count), in all. */
static int count_pairs(trainer_state *s, uint32_t w, int sign, int32_t track_id) {
    const int32_t *x = s->sym + s->start[w];
    for (uint32_t i = 0; i + 1 < s->len[w]; i++) {
        long p = pair_of(s, x[i], x[i + 1]);
        if (p < 0) return -1;
        s->pairs[p].count += sign * s->wcount[w];
        int mine = track_id < 0 || x[i] == track_id || x[i + 1] == track_id;
        if (sign > 0 && mine && add_where(&s->pairs[p], w) != 0) return -1;
        if (sign > 0 && track_id >= 0 && mine && note_fresh(s, (uint32_t)p) != 0) return -1;
    }
    return 0;
}

/* Replaces every (a, b) in piece w, left to right, by id. */
static void rewrite(trainer_state *s, uint32_t w, int32_t a, int32_t b, int32_t id) {
    int32_t *x = s->sym + s->start[w];
    uint32_t o = 0;
    for (uint32_t i = 0; i < s->len[w]; i++) {
        if (i + 1 < s->len[w] && x[i] == a && x[i + 1] == b) {
            x[o++] = id;
            i++;
        } else {
            x[o++] = x[i];
        }
    }
    s->len[w] = o;
}

static int add_token(trainer_state *s, const char *str, size_t len, int32_t *id) {
    int added;
    int64_t *v = strmap_insert(&s->tokens, str, len, &added);
    if (!v) return -1;
    if (added) {
        char *copy = malloc(len + 1);
        if (!copy) return -1;
        memcpy(copy, str, len);
        copy[len] = '\0';
        *v = s->nvocab;
        s->tok[s->nvocab++] = copy;
    }
    *id = (int32_t)*v;
    return 0;
}

/* Merges the pair p into a token (new, or existing when another pair spelled it first),
 * rewriting the pieces that hold it and updating the counts of their pairs. */
static int apply_merge(trainer_state *s, uint32_t p) {
    int32_t a = s->pairs[p].a, b = s->pairs[p].b, id;
    size_t la = strlen(s->tok[a]), lb = strlen(s->tok[b]);
    char *joined = malloc(la + lb + 1);
    if (!joined) return -1;
    memcpy(joined, s->tok[a], la);
    memcpy(joined + la, s->tok[b], lb);
    int rc = add_token(s, joined, la + lb, &id);
    free(joined);
    if (rc != 0) return -1;
    if (s->nmerges == s->capmerges) {
        int cap = s->capmerges ? s->capmerges * 2 : 1024;
        int32_t(*m)[2] = realloc(s->merges, (size_t)cap * sizeof *m);
        if (!m) return -1;
        s->merges = m;
        s->capmerges = cap;
    }
    s->merges[s->nmerges][0] = a;
    s->merges[s->nmerges][1] = b;
    uint32_t stamp = (uint32_t)++s->nmerges;
    /* the list may grow while we walk it (a piece can hold the new pair's neighbours) */
    for (uint32_t k = 0; k < s->pairs[p].nwhere; k++) {
        uint32_t w = s->pairs[p].where[k];
        if (s->stamp[w] == stamp) continue;
        s->stamp[w] = stamp;
        if (count_pairs(s, w, -1, -1) != 0) return -1;
        rewrite(s, w, a, b, id);
        if (count_pairs(s, w, +1, id) != 0) return -1;
    }
    free(s->pairs[p].where);
    s->pairs[p].where = NULL;
    s->pairs[p].nwhere = s->pairs[p].capwhere = 0;
    /* the new token's pairs gained counts: they enter the heap; pairs that lost counts
     * are corrected when they reach the top (best_pair) */
    for (size_t k = 0; k < s->nfresh; k++) {
        uint32_t q = s->fresh[k];
        if (s->pairs[q].count > 0 && heap_push(s, (heap_entry){s->pairs[q].count, q}) != 0) return -1;
    }
    s->nfresh = 0;
    return 0;
}

/* The most frequent pair, its count brought up to date; -1 if none occurs twice. */
static long best_pair(trainer_state *s) {
    while (s->nheap > 0) {
        heap_entry e = heap_pop(s);
        int64_t now = s->pairs[e.pair].count;
        if (now == e.count && now >= 2) return e.pair;
        if (now != e.count && now >= 2 && heap_push(s, (heap_entry){now, e.pair}) != 0) return -2;
    }
    return -1;
}

static int load_pieces(trainer_state *s, const strmap *words, const int32_t *byte_id) {
    size_t total = words->klen, n = words->n;
    s->sym = malloc((total + 1) * sizeof *s->sym);
    s->start = malloc((n + 1) * sizeof *s->start);
    s->len = malloc((n + 1) * sizeof *s->len);
    s->wcount = malloc((n + 1) * sizeof *s->wcount);
    s->stamp = calloc(n + 1, sizeof *s->stamp);
    if (!s->sym || !s->start || !s->len || !s->wcount || !s->stamp) return -1;
    size_t at = 0;
    for (size_t w = 0; w < n; w++) {
        const strmap_entry *e = &words->e[w];
        const unsigned char *k = (const unsigned char *)words->keys + e->off;
        s->start[w] = at;
        s->len[w] = e->len;
        s->wcount[w] = e->val;
        for (uint32_t i = 0; i < e->len; i++) s->sym[at++] = byte_id[k[i]];
    }
    s->nwords = n;
    for (uint32_t w = 0; w < n; w++)
        if (count_pairs(s, w, +1, -1) != 0) return -1;
    for (size_t q = 0; q < s->npairs; q++)
        if (s->pairs[q].count > 0 && heap_push(s, (heap_entry){s->pairs[q].count, (uint32_t)q}) != 0) return -1;
    return 0;
}

/* The 256 byte tokens, in the order of their characters' code points (GPT-2's order). */
static int byte_tokens(trainer_state *s, int32_t *byte_id) {
    for (uint32_t cp = 0; cp < 256 + 68; cp++) {
        int byte = bpe_char_byte(cp);
        if (byte < 0) continue;
        char buf[4];
        int n = utf8_encode(cp, buf);
        if (add_token(s, buf, (size_t)n, &byte_id[byte]) != 0) return -1;
    }
    return 0;
}

static int learn(const job *j, trainer_state *s, const strmap *words, int vocab_size) {
    int32_t byte_id[256];
    if (byte_tokens(s, byte_id) != 0 || load_pieces(s, words, byte_id) != 0)
        return ds_fail(j->err, j->errlen, "%s: out of memory", j->out);
    int report = vocab_size / 10 > 0 ? vocab_size / 10 : 1;
    while (s->nvocab < vocab_size - 1) { /* the last id is <|endoftext|> */
        long p = best_pair(s);
        if (p == -1) break;
        int before_vocab = s->nvocab;
        if (p < 0 || apply_merge(s, (uint32_t)p) != 0)
            return ds_fail(j->err, j->errlen, "%s: out of memory", j->out);
        if (s->nvocab != before_vocab && s->nvocab % report == 0) {
            printf("bpe: %d of %d tokens\n", s->nvocab, vocab_size);
            fflush(stdout);
        }
    }
    int32_t id;
    if (add_token(s, END_OF_TEXT, strlen(END_OF_TEXT), &id) != 0)
        return ds_fail(j->err, j->errlen, "%s: out of memory", j->out);
    return 0;
}

/* ---- writing vocab.json and merges.txt ------------------------------------------------------ */

static int write_vocab(const trainer_state *s, const char *path) {
    json_t *obj = json_object();
    int ok = obj != NULL;
    for (int id = 0; ok && id < s->nvocab; id++) ok = json_object_set_new(obj, s->tok[id], json_integer(id)) == 0;
    ok = ok && json_dump_file(obj, path, JSON_PRESERVE_ORDER | JSON_COMPACT) == 0;
    json_decref(obj);
    return ok ? 0 : -1;
}

static int write_merges(const trainer_state *s, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "#version: 0.2\n");
    for (int m = 0; m < s->nmerges; m++) fprintf(f, "%s %s\n", s->tok[s->merges[m][0]], s->tok[s->merges[m][1]]);
    int bad = ferror(f);
    return fclose(f) != 0 || bad ? -1 : 0;
}

/* DIR/NAME through DIR/NAME.tmp.PID: written, synced, renamed. */
static int write_one(const job *j, const trainer_state *s, const char *name,
                     int (*writer)(const trainer_state *, const char *)) {
    size_t len = strlen(j->out) + strlen(name) + 40;
    char *final_path = malloc(len), *tmp = malloc(len);
    int rc = final_path && tmp ? 0 : ds_fail(j->err, j->errlen, "%s: out of memory", j->out);
    if (rc == 0) {
        snprintf(final_path, len, "%s/%s", j->out, name);
        snprintf(tmp, len, "%s.tmp.%ld", final_path, (long)getpid());
        if (writer(s, tmp) != 0) {
            rc = ds_fail(j->err, j->errlen, "%s: cannot write: %s", tmp, errno ? strerror(errno) : "error");
            remove(tmp);
        } else {
            rc = ds_sync_and_rename(tmp, final_path, j->err, j->errlen);
        }
    }
    free(final_path);
    free(tmp);
    return rc;
}

static void free_state(trainer_state *s) {
    free(s->sym);
    free(s->start);
    free(s->len);
    free(s->wcount);
    free(s->stamp);
    u64map_free(&s->index);
    for (size_t q = 0; q < s->npairs; q++) free(s->pairs[q].where);
    free(s->pairs);
    free(s->heap);
    strmap_free(&s->tokens);
    for (int i = 0; i < s->nvocab; i++) free(s->tok[i]);
    free(s->tok);
    free(s->merges);
    free(s->fresh);
}

static int check_out_dir(const job *j) {
    struct stat st;
    if (stat(j->out, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : ds_fail(j->err, j->errlen, "%s: exists and is not a directory", j->out);
    if (mkdir(j->out, 0777) != 0) return ds_fail(j->err, j->errlen, "%s: cannot create: %s", j->out, strerror(errno));
    return 0;
}

int prepare_bpe(const char *const *in, int nin, long vocab_size, long max_words, const char *out_dir, char *err,
                size_t errlen) {
    job j = {out_dir, err, errlen};
    if (vocab_size < 257 || vocab_size > BPE_MAX_VOCAB) {
        ds_fail(err, errlen, "%s: vocab size %ld: expected 257 (the 256 bytes and <|endoftext|>) to %d", out_dir,
                vocab_size, BPE_MAX_VOCAB);
        return PREPARE_BAD_INPUT;
    }
    if (max_words < 1024) {
        ds_fail(err, errlen, "%s: max words %ld: expected at least 1024", out_dir, max_words);
        return PREPARE_BAD_INPUT;
    }
    strmap words;
    strmap_init(&words);
    int rc = count_words(&j, in, nin, (size_t)max_words, &words);
    trainer_state s = {0};
    u64map_init(&s.index);
    strmap_init(&s.tokens);
    s.tok = calloc((size_t)vocab_size, sizeof *s.tok);
    if (rc == 0 && !s.tok) rc = ds_fail(err, errlen, "%s: out of memory", out_dir) ? PREPARE_FAILED : 0;
    if (rc == 0 && learn(&j, &s, &words, (int)vocab_size) != 0) rc = PREPARE_FAILED;
    strmap_free(&words);
    if (rc == 0 && check_out_dir(&j) != 0) rc = PREPARE_FAILED;
    if (rc == 0 && (write_one(&j, &s, "merges.txt", write_merges) != 0 || write_one(&j, &s, "vocab.json", write_vocab) != 0))
        rc = PREPARE_FAILED;
    if (rc == 0)
        printf("bpe: %d tokens (%d merges)%s\n", s.nvocab, s.nmerges,
               s.nvocab < vocab_size ? ": the text has no more pairs that occur twice" : "");
    free_state(&s);
    return rc;
}
