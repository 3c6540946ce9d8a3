/* tok_table.c: the tokenizer's two hash tables (see tok_internal.h).
 *
 * Both are open addressing with linear probing at a load factor of at most one half, sized
 * from the expected count. The string table copies no strings: its slots point into the
 * tokenizer's pool, so the 262144 pieces of a Gemma vocabulary cost 16 bytes a slot and no
 * malloc each.
 */
#include "text/tok_internal.h"

#include "base/err.h"
#include "base/hash.h"

#include <assert.h>
#include <string.h>

static uint32_t pow2_at_least(size_t n) {
    uint32_t c = 16;
    while (c < n) c *= 2;
    return c;
}

void tok_strmap_init(tok_strmap *m, size_t expected) {
    uint32_t cap = pow2_at_least(expected * 2 + 1);
    m->slot = eft_calloc(cap, sizeof *m->slot);
    m->mask = cap - 1;
    m->count = 0;
}

void tok_strmap_free(tok_strmap *m) {
    eft_free(m->slot);
    m->slot = NULL;
}

/* The slot holding key, or the empty slot where it would go, with the key's check word. */
static struct tok_str_slot *strmap_find(const tok_strmap *m, const char *key, size_t n,
                                        uint32_t *check_out) {
    uint64_t h = eft_hash64(key, n);
    uint32_t check = ((uint32_t)(h >> 32) & ~0xFFFu) | (n < 0xFFF ? (uint32_t)n : 0xFFF);
    *check_out = check;
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        struct tok_str_slot *s = &m->slot[i];
        if (!s->key) return s;
        if (s->check != check) continue;
        /* the check word holds lengths below 0xFFF exactly; longer keys are measured */
        if ((n < 0xFFF || strlen(s->key) == n) && !memcmp(s->key, key, n)) return s;
    }
}

int32_t tok_strmap_put(tok_strmap *m, const char *key, size_t n, int32_t v) {
    uint32_t check;
    struct tok_str_slot *s = strmap_find(m, key, n, &check);
    if (s->key) return s->value;
    m->count++;
    assert(2 * (size_t)m->count <= (size_t)m->mask + 1);
    *s = (struct tok_str_slot){key, check, v};
    return -1;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t n) {
    uint32_t check;
    const struct tok_str_slot *s = strmap_find(m, key, n, &check);
    return s->key ? s->value : -1;
}

void tok_u64map_init(tok_u64map *m, size_t expected) {
    uint32_t cap = pow2_at_least(expected * 2 + 1);
    m->slot = eft_malloc((size_t)cap * sizeof *m->slot);
    for (uint32_t i = 0; i < cap; i++) m->slot[i].key = TOK_U64_EMPTY;
    m->mask = cap - 1;
    m->shift = 64 - (uint32_t)__builtin_ctz(cap);
    m->count = 0;
}

void tok_u64map_free(tok_u64map *m) {
    eft_free(m->slot);
    m->slot = NULL;
}

static void u64map_grow(tok_u64map *m) {
    tok_u64map bigger;
    tok_u64map_init(&bigger, (size_t)(m->mask + 1));
    for (uint32_t i = 0; i <= m->mask; i++)
        if (m->slot[i].key != TOK_U64_EMPTY)
            tok_u64map_put(&bigger, m->slot[i].key, m->slot[i].val);
    tok_u64map_free(m);
    *m = bigger;
}

void tok_u64map_put(tok_u64map *m, uint64_t key, uint64_t val) {
    if (2 * (m->count + 1) > (size_t)m->mask + 1) u64map_grow(m);
    uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> m->shift);
    for (;; i = (i + 1) & m->mask) {
        if (m->slot[i].key == key) break;
        if (m->slot[i].key == TOK_U64_EMPTY) {
            m->slot[i].key = key;
            m->count++;
            break;
        }
    }
    m->slot[i].val = val;
}
