/* tok_cache.c: each thread's cache of chunk -> tokens (chunks: see tok_bpe.c).
 *
 * Encoding is mostly lookups here (a chunk is a few characters, and text repeats them), and a
 * lookup's cost is its cache misses. So the common case fits one 128-byte slot: the key (up to
 * 56 bytes), the token ids and their lengths inline, in a direct-mapped table where a new chunk
 * simply replaces an old one. Chunks that do not fit (long runs such as code indentation plus a
 * word, or more than 12 tokens) go to a second table whose entries live in a byte pool; it is
 * emptied when full. Either way a hit gives exactly what BPE gave for those bytes: entries are
 * compared on the whole key, never on the hash alone.
 */
#include "text/tok_internal.h"

#include "base/err.h"

#include <string.h>

#define SHORT_SLOTS (1u << 15) /* 128 B each: 4 MiB a thread */
#define SHORT_KEY   56
#define SHORT_TOK   12
#define LONG_SLOTS  (1u << 14)
#define LONG_BYTES  (2u << 20)
#define LONG_KEY    255

typedef struct short_slot {
    uint64_t hash; /* 0 = empty */
    uint8_t key_len, ntok, len[SHORT_TOK], unused[2];
    int32_t id[SHORT_TOK];
    unsigned char key[SHORT_KEY];
} short_slot;

_Static_assert(sizeof(short_slot) == 128, "a short slot is two cache lines");

struct tok_cache {
    short_slot *slot;    /* [SHORT_SLOTS] */
    uint64_t *long_hash; /* [LONG_SLOTS] 0 = empty */
    uint32_t *long_at;   /* [LONG_SLOTS] entry offset in pool */
    unsigned char *pool; /* entries: key_len, ntok, key, ids (int32), lens (u8) */
    size_t pool_used;
    uint32_t long_count;
};

tok_cache *tok_cache_new(void) {
    tok_cache *c = eft_calloc(1, sizeof *c);
    c->slot = eft_malloc_aligned(SHORT_SLOTS * sizeof *c->slot);
    memset(c->slot, 0, SHORT_SLOTS * sizeof *c->slot);
    c->long_hash = eft_calloc(LONG_SLOTS, sizeof *c->long_hash);
    c->long_at = eft_malloc(LONG_SLOTS * sizeof *c->long_at);
    c->pool = eft_malloc(LONG_BYTES);
    return c;
}

void tok_cache_free(tok_cache *c) {
    if (!c) return;
    eft_free_aligned(c->slot);
    eft_free(c->long_hash);
    eft_free(c->long_at);
    eft_free(c->pool);
    eft_free(c);
}

static void append(tok_scratch *s, const int32_t *ids, const uint8_t *lens, size_t ntok) {
    tok_scratch_reserve_tokens(s, s->ntok + ntok);
    memcpy(s->tid + s->ntok, ids, ntok * sizeof *ids);
    for (size_t k = 0; k < ntok; k++) s->tlen[s->ntok + k] = lens[k];
    s->ntok += ntok;
}

static const unsigned char *long_find(const tok_cache *c, const unsigned char *key, size_t n,
                                      uint64_t h, uint32_t *where) {
    uint32_t i = (uint32_t)(h >> 20) & (LONG_SLOTS - 1);
    for (; c->long_hash[i]; i = (i + 1) & (LONG_SLOTS - 1)) {
        const unsigned char *e = c->pool + c->long_at[i];
        if (c->long_hash[i] == h && e[0] == n && !memcmp(e + 2, key, n)) return e;
    }
    *where = i;
    return NULL;
}

bool tok_cache_get(tok_cache *c, const unsigned char *key, size_t n, uint64_t h, tok_scratch *s) {
    if (n <= SHORT_KEY) {
        const short_slot *sl = &c->slot[h & (SHORT_SLOTS - 1)];
        if (sl->hash == h && sl->key_len == n && !memcmp(sl->key, key, n)) {
            append(s, sl->id, sl->len, sl->ntok);
            return true;
        }
    }
    uint32_t where;
    const unsigned char *e = n <= LONG_KEY ? long_find(c, key, n, h, &where) : NULL;
    if (!e) return false;
    size_t ntok = e[1];
    int32_t ids[LONG_KEY];
    memcpy(ids, e + 2 + n, ntok * sizeof *ids);
    append(s, ids, e + 2 + n + ntok * 4, ntok);
    return true;
}

void tok_cache_put(tok_cache *c, const unsigned char *key, size_t n, uint64_t h, const int32_t *ids,
                   const uint32_t *lens, size_t ntok) {
    if (n <= SHORT_KEY && ntok <= SHORT_TOK) {
        short_slot *sl = &c->slot[h & (SHORT_SLOTS - 1)];
        sl->hash = h;
        sl->key_len = (uint8_t)n, sl->ntok = (uint8_t)ntok;
        memcpy(sl->key, key, n);
        memcpy(sl->id, ids, ntok * sizeof *ids);
        for (size_t k = 0; k < ntok; k++) sl->len[k] = (uint8_t)lens[k];
        return;
    }
    if (n > LONG_KEY) return;
    size_t size = 2 + n + ntok * 5;
    if (2 * (c->long_count + 1) > LONG_SLOTS || c->pool_used + size > LONG_BYTES) {
        memset(c->long_hash, 0, LONG_SLOTS * sizeof *c->long_hash);
        c->pool_used = 0, c->long_count = 0;
    }
    uint32_t where;
    if (long_find(c, key, n, h, &where)) return;
    unsigned char *e = c->pool + c->pool_used;
    e[0] = (unsigned char)n, e[1] = (unsigned char)ntok; /* ntok <= n bytes <= 255 */
    memcpy(e + 2, key, n);
    memcpy(e + 2 + n, ids, ntok * sizeof *ids);
    for (size_t k = 0; k < ntok; k++) e[2 + n + ntok * 4 + k] = (unsigned char)lens[k];
    c->long_hash[where] = h;
    c->long_at[where] = (uint32_t)c->pool_used;
    c->pool_used += size;
    c->long_count++;
}
