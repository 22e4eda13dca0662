/* hashmap.h: two open-addressing hash tables for the BPE code (private to datasets/).
 *
 * strmap: byte strings → int64 (vocabulary lookups, the encoder's word cache, the trainer's
 * word counts). Keys are copied into one arena; entries keep insertion order, so an index
 * 0..count-1 names each key for as long as the map is not cleared.
 * u64map: uint64 keys (a pair of token ids) → uint64 values. The key UINT64_MAX is reserved. */
#ifndef DTRAIN_HASHMAP_H
#define DTRAIN_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

uint64_t hash_bytes(const void *key, size_t len);

typedef struct {
    uint64_t hash;
    size_t off; /* into keys */
    uint32_t len;
    int64_t val;
} strmap_entry;

typedef struct {
    uint32_t *slots; /* entry index + 1; 0 = empty */
    size_t nslots;   /* a power of two */
    strmap_entry *e;
    size_t n, ecap;
    char *keys;
    size_t klen, kcap;
} strmap;

void strmap_init(strmap *m);
void strmap_free(strmap *m);
void strmap_clear(strmap *m); /* forgets every key, keeps the memory */
/* The value of key, or NULL. The pointer is valid until the next insert. */
int64_t *strmap_find(const strmap *m, const void *key, size_t len);
/* The value of key, inserted as 0 when new (*added = 1); NULL when out of memory. */
int64_t *strmap_insert(strmap *m, const void *key, size_t len, int *added);
/* Approximate bytes held, for the memory bounds. */
size_t strmap_bytes(const strmap *m);

typedef struct {
    uint64_t *keys, *vals;
    size_t nslots, n; /* nslots: a power of two */
} u64map;

void u64map_init(u64map *m);
void u64map_free(u64map *m);
/* The slot of key's value, or NULL. */
uint64_t *u64map_find(const u64map *m, uint64_t key);
/* Sets key to val; 0, or -1 when out of memory. */
int u64map_put(u64map *m, uint64_t key, uint64_t val);

#endif
