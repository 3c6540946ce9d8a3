/* tok_cache.c: each thread's cache of chunk -> tokens (chunks: see tok_bpe.c).
 *
 * Encoding is mostly lookups here: a chunk is a few characters and text repeats them, while a
 * miss costs a BPE run (about a microsecond). The table is sized so that a large corpus's
 * distinct chunks fit (a 30 MB mixed corpus has about 80 thousand) and is emptied when full,
 * which is simpler and, measured, faster than a direct-mapped table that evicts on collision.
 *
 * A slot is 8 bytes, 40 bits of hash and the entry's 24-bit offset in a byte pool, so a lookup
 * reads one slot and one entry. Entries are compared on the whole key, never on the hash alone,
 * so a hit gives exactly what BPE gave for those bytes.
 */
#include "text/tok_internal.h"

#include "base/err.h"

#include <string.h>

#define SLOTS   (1u << 18)  /* 2 MiB */
#define POOL    (16u << 20) /* entry bytes; offsets must fit in 24 bits */
#define AT_BITS 24
#define KEY_MAX 255 /* longer chunks are encoded each time */

struct tok_cache {
    uint64_t *slot;      /* [SLOTS] hash bits above AT_BITS | entry offset; 0 = empty */
    unsigned char *pool; /* entries: key_len, ntok, key, ids (int32), lens (u8) */
    size_t used;
    uint32_t count;
};

_Static_assert(POOL <= 1u << AT_BITS, "pool offsets fit in a slot");

tok_cache *tok_cache_new(void) {
    tok_cache *c = eft_calloc(1, sizeof *c);
    c->slot = eft_calloc(SLOTS, sizeof *c->slot);
    c->pool = eft_malloc(POOL);
    return c;
}

void tok_cache_free(tok_cache *c) {
    if (!c) return;
    eft_free(c->slot);
    eft_free(c->pool);
    eft_free(c);
}

/* The entry for key, or NULL with *where set to the empty slot for it. */
static const unsigned char *find(const tok_cache *c, const unsigned char *key, size_t n,
                                 uint64_t tag, uint32_t *where) {
    uint32_t i = (uint32_t)(tag >> AT_BITS) & (SLOTS - 1);
    for (uint64_t s; (s = c->slot[i]); i = (i + 1) & (SLOTS - 1)) {
        const unsigned char *e = c->pool + (s & ((1u << AT_BITS) - 1));
        if ((s >> AT_BITS) == (tag >> AT_BITS) && e[0] == n && !memcmp(e + 2, key, n)) return e;
    }
    *where = i;
    return NULL;
}

/* The hash bits kept in a slot, never all zero. */
static uint64_t tag_of(uint64_t h) {
    return (h | 1ull << 63) & ~(((uint64_t)1 << AT_BITS) - 1);
}

void tok_cache_prefetch(const tok_cache *c, uint64_t h, bool entry) {
    const uint64_t *slot = &c->slot[(uint32_t)(tag_of(h) >> AT_BITS) & (SLOTS - 1)];
    if (!entry)
        __builtin_prefetch(slot);
    else if (*slot)
        __builtin_prefetch(c->pool + (*slot & ((1u << AT_BITS) - 1)));
}

bool tok_cache_get(tok_cache *c, const unsigned char *key, size_t n, uint64_t h, tok_scratch *s) {
    uint32_t where;
    const unsigned char *e = n <= KEY_MAX ? find(c, key, n, tag_of(h), &where) : NULL;
    if (!e) return false;
    size_t ntok = e[1];
    const unsigned char *ids = e + 2 + n, *lens = ids + 4 * ntok;
    tok_scratch_reserve_tokens(s, s->ntok + ntok);
    memcpy(s->tid + s->ntok, ids, ntok * sizeof *s->tid);
    for (size_t k = 0; k < ntok; k++) s->tlen[s->ntok + k] = lens[k];
    s->ntok += ntok;
    return true;
}

void tok_cache_put(tok_cache *c, const unsigned char *key, size_t n, uint64_t h, const int32_t *ids,
                   const uint32_t *lens, size_t ntok) {
    size_t size = 2 + n + ntok * 5;
    if (n > KEY_MAX) return;
    if (2 * (c->count + 1) > SLOTS || c->used + size > POOL) {
        memset(c->slot, 0, SLOTS * sizeof *c->slot);
        c->used = 0, c->count = 0;
    }
    uint32_t where;
    uint64_t tag = tag_of(h);
    if (find(c, key, n, tag, &where)) return;
    unsigned char *e = c->pool + c->used;
    e[0] = (unsigned char)n, e[1] = (unsigned char)ntok; /* ntok <= n <= 255 */
    memcpy(e + 2, key, n);
    memcpy(e + 2 + n, ids, ntok * sizeof *ids);
    for (size_t k = 0; k < ntok; k++) e[2 + n + 4 * ntok + k] = (unsigned char)lens[k];
    c->slot[where] = tag | c->used;
    c->used += size;
    c->count++;
}
