/* hashmap.c: see hashmap.h. Linear probing over power-of-two tables kept at most half full. */
#include "hashmap.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY_KEY UINT64_MAX

static uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* Eight bytes per step; the length is folded in so that "a" and "a\0" differ. */
uint64_t hash_bytes(const void *key, size_t len) {
    const unsigned char *p = key;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, len);
    return mix(h ^ w);
}

/* ---- strmap ------------------------------------------------------------------------ */

void strmap_init(strmap *m) { memset(m, 0, sizeof *m); }

void strmap_free(strmap *m) {
    free(m->slots);
    free(m->e);
    free(m->keys);
    strmap_init(m);
}

void strmap_clear(strmap *m) {
    if (m->slots) memset(m->slots, 0, m->nslots * sizeof *m->slots);
    m->n = 0;
    m->klen = 0;
}

size_t strmap_bytes(const strmap *m) {
    return m->nslots * sizeof *m->slots + m->ecap * sizeof *m->e + m->kcap;
}

static size_t find_slot(const strmap *m, uint64_t h, const void *key, size_t len) {
    size_t mask = m->nslots - 1, i = (size_t)h & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t s = m->slots[i];
        if (s == 0) return i;
        const strmap_entry *e = &m->e[s - 1];
        if (e->hash == h && e->len == len && memcmp(m->keys + e->off, key, len) == 0) return i;
    }
}

int64_t *strmap_find(const strmap *m, const void *key, size_t len) {
    if (m->n == 0) return NULL;
    uint32_t s = m->slots[find_slot(m, hash_bytes(key, len), key, len)];
    return s ? &m->e[s - 1].val : NULL;
}

static int grow_slots(strmap *m) {
    size_t n = m->nslots ? m->nslots * 2 : 1024;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (!slots) return -1;
    for (size_t k = 0; k < m->n; k++) {
        size_t i = (size_t)m->e[k].hash & (n - 1);
        while (slots[i]) i = (i + 1) & (n - 1);
        slots[i] = (uint32_t)(k + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = n;
    return 0;
}

static int reserve(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 1024;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

int64_t *strmap_insert(strmap *m, const void *key, size_t len, int *added) {
    *added = 0;
    if ((m->n + 1) * 2 > m->nslots && grow_slots(m) != 0) return NULL;
    uint64_t h = hash_bytes(key, len);
    size_t i = find_slot(m, h, key, len);
    if (m->slots[i]) return &m->e[m->slots[i] - 1].val;
    if (len > UINT32_MAX || m->n >= UINT32_MAX - 1 || reserve((void **)&m->e, &m->ecap, m->n + 1, sizeof *m->e) ||
        reserve((void **)&m->keys, &m->kcap, m->klen + len + 1, 1))
        return NULL;
    memcpy(m->keys + m->klen, key, len);
    m->e[m->n] = (strmap_entry){h, m->klen, (uint32_t)len, 0};
    m->klen += len;
    m->slots[i] = (uint32_t)++m->n;
    *added = 1;
    return &m->e[m->n - 1].val;
}

/* ---- u64map ------------------------------------------------------------------------ */

void u64map_init(u64map *m) { memset(m, 0, sizeof *m); }

void u64map_free(u64map *m) {
    free(m->keys);
    free(m->vals);
    u64map_init(m);
}

static size_t u64_slot(const u64map *m, uint64_t key) {
    size_t mask = m->nslots - 1, i = (size_t)mix(key) & mask;
    while (m->keys[i] != EMPTY_KEY && m->keys[i] != key) i = (i + 1) & mask;
    return i;
}

uint64_t *u64map_find(const u64map *m, uint64_t key) {
    if (m->n == 0) return NULL;
    size_t i = u64_slot(m, key);
    return m->keys[i] == key ? &m->vals[i] : NULL;
}

static int u64_grow(u64map *m) {
    u64map bigger = {0};
    bigger.nslots = m->nslots ? m->nslots * 2 : 1024;
    bigger.keys = malloc(bigger.nslots * sizeof *bigger.keys);
    bigger.vals = malloc(bigger.nslots * sizeof *bigger.vals);
    if (!bigger.keys || !bigger.vals) {
        u64map_free(&bigger);
        return -1;
    }
    memset(bigger.keys, 0xFF, bigger.nslots * sizeof *bigger.keys);
    for (size_t i = 0; i < m->nslots; i++) {
        if (m->keys[i] == EMPTY_KEY) continue;
        size_t j = u64_slot(&bigger, m->keys[i]);
        bigger.keys[j] = m->keys[i];
        bigger.vals[j] = m->vals[i];
    }
    bigger.n = m->n;
    u64map_free(m);
    *m = bigger;
    return 0;
}

int u64map_put(u64map *m, uint64_t key, uint64_t val) {
    if ((m->n + 1) * 2 > m->nslots && u64_grow(m) != 0) return -1;
    size_t i = u64_slot(m, key);
    if (m->keys[i] == EMPTY_KEY) {
        m->keys[i] = key;
        m->n++;
    }
    m->vals[i] = val;
    return 0;
}
