/* tok_bpe.c: byte-pair encoding of one pre-tokenized word, exactly as Hugging Face's BPE model.
 *
 * The merge loop is Hugging Face's: the word starts as one symbol per character (a character
 * missing from the vocabulary becomes its "<0xHH>" byte pieces, or <unk>, fused when fuse_unk),
 * then the pair of adjacent symbols with the lowest merge rank is merged, leftmost first, until
 * no adjacent pair has a merge. A binary heap of (rank, position) with lazy deletion does it in
 * O(n log n).
 *
 * Gemma's pre-tokenizer does not split (the normalizer has already turned spaces into "▁"), so a
 * "word" is a whole run of text between added tokens: a paragraph. Running BPE on it as one word
 * would be correct but slow and uncachable. Instead the word is cut into chunks where the
 * vocabulary proves no merge can ever cross:
 *
 *   A boundary between characters c1 and c2 is safe when both are one-character pieces and no
 *   merge (a, b) has a ending in c1 and b starting with c2.
 *
 * Why this is exact: every symbol's piece is the concatenation of the pieces it was merged from
 * (a merge's result is looked up as a + b), so the symbol left of the boundary always ends in
 * c1's piece and the one right of it starts with c2's. Merging them would need a merge (a, b)
 * with a ending in c1 and b starting with c2: there is none, so no symbol ever spans the
 * boundary, and merges on either side never see each other. Their relative order does not
 * matter either: each side's merges are still taken in (rank, position) order. The table of
 * joined pairs is built from the actual merges at load (tok_model.c); a merge with an empty side
 * turns chunking off. Byte-fallback and unknown characters are never boundaries.
 *
 * For Gemma's vocabulary this cuts English before each "▁word" and mostly between words in
 * other scripts; chunks average a few characters and repeat, so each thread caches chunk ->
 * tokens (tok_cache.c).
 */
#include "text/tok_internal.h"

#include "base/err.h"
#include "base/hash.h"

#include <string.h>

/* ---- the merge loop ---- */

static void push_token(tok_scratch *s, int32_t id, uint32_t len) {
    tok_scratch_reserve_tokens(s, s->ntok + 1);
    s->tid[s->ntok] = id;
    s->tlen[s->ntok++] = len;
}

static bool merge_of(const tok_tokenizer *t, int32_t a, int32_t b, uint32_t *rank,
                     int32_t *merged) {
    uint64_t v;
    if (!tok_u64map_get(&t->merges, (uint64_t)a << 32 | (uint32_t)b, &v)) return false;
    *rank = (uint32_t)(v >> 32), *merged = (int32_t)(uint32_t)v;
    return true;
}

static void heap_push(tok_scratch *s, size_t *n, uint64_t key, int32_t merged) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (s->heap_key[p] <= key) break;
        s->heap_key[i] = s->heap_key[p], s->heap_new[i] = s->heap_new[p];
        i = p;
    }
    s->heap_key[i] = key, s->heap_new[i] = merged;
}

static void heap_pop(tok_scratch *s, size_t *n) {
    uint64_t key = s->heap_key[--*n];
    int32_t merged = s->heap_new[*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && s->heap_key[c + 1] < s->heap_key[c]) c++;
        if (key <= s->heap_key[c]) break;
        s->heap_key[i] = s->heap_key[c], s->heap_new[i] = s->heap_new[c];
        i = c;
    }
    s->heap_key[i] = key, s->heap_new[i] = merged;
}

static void push_pair(const tok_tokenizer *t, tok_scratch *s, size_t *nheap, int32_t pos) {
    uint32_t rank;
    int32_t merged;
    struct tok_sym *sym = s->sym;
    if (merge_of(t, sym[pos].id, sym[sym[pos].next].id, &rank, &merged))
        heap_push(s, nheap, (uint64_t)rank << 32 | (uint32_t)pos, merged);
}

static void merge_all(const tok_tokenizer *t, tok_scratch *s, size_t nsym) {
    struct tok_sym *sym = s->sym;
    size_t nheap = 0;
    for (size_t i = 0; i + 1 < nsym; i++) push_pair(t, s, &nheap, (int32_t)i);
    while (nheap) {
        int32_t pos = (int32_t)(uint32_t)s->heap_key[0], merged = s->heap_new[0];
        heap_pop(s, &nheap);
        int32_t right = sym[pos].next;
        uint32_t rank;
        int32_t now;
        /* stale entries: the left symbol was merged away, is last, or the pair has changed */
        if (!sym[pos].len || right < 0) continue;
        if (!merge_of(t, sym[pos].id, sym[right].id, &rank, &now) || now != merged) continue;
        sym[pos].id = merged;
        sym[pos].len += sym[right].len;
        sym[pos].next = sym[right].next;
        sym[right].len = 0;
        if (sym[pos].next >= 0) sym[sym[pos].next].prev = pos;
        if (sym[pos].prev >= 0) push_pair(t, s, &nheap, sym[pos].prev);
        if (sym[pos].next >= 0) push_pair(t, s, &nheap, pos);
    }
}

static void add_sym(tok_scratch *s, size_t *n, int32_t id, uint32_t len) {
    struct tok_sym *y = &s->sym[*n];
    y->id = id, y->len = len;
    y->prev = (int32_t)*n - 1, y->next = -1;
    if (*n) s->sym[*n - 1].next = (int32_t)*n;
    (*n)++;
}

/* BPE over one chunk w[0..n) whose nchars characters are cid/clen; appends tokens. */
static void bpe_chunk(const tok_tokenizer *t, tok_scratch *s, const unsigned char *w, size_t n,
                      const int32_t *cid, const uint32_t *clen, size_t nchars) {
    if (s->sym_cap < n + 1) {
        s->sym_cap = 2 * n + 16;
        s->sym = eft_realloc(s->sym, s->sym_cap * sizeof *s->sym);
        s->heap_key = eft_realloc(s->heap_key, 3 * s->sym_cap * sizeof *s->heap_key);
        s->heap_new = eft_realloc(s->heap_new, 3 * s->sym_cap * sizeof *s->heap_new);
    }
    size_t nsym = 0, at = 0;
    uint32_t unk_len = 0; /* a pending <unk>, as Hugging Face holds it back to fuse */
    for (size_t k = 0; k < nchars; at += clen[k++]) {
        uint32_t len = clen[k];
        if (cid[k] >= 0) {
            if (unk_len) add_sym(s, &nsym, t->unk_id, unk_len), unk_len = 0;
            add_sym(s, &nsym, cid[k], len);
            continue;
        }
        bool bytes = t->byte_fallback;
        for (uint32_t b = 0; bytes && b < len; b++) bytes = t->byte_id[w[at + b]] >= 0;
        if (bytes) { /* a held-back <unk> stays held back, as in Hugging Face */
            for (uint32_t b = 0; b < len; b++) add_sym(s, &nsym, t->byte_id[w[at + b]], 1);
        } else if (t->unk_id >= 0) {
            if (unk_len && !t->fuse_unk) add_sym(s, &nsym, t->unk_id, unk_len), unk_len = 0;
            unk_len += len;
        } /* no unk token: the character is dropped (and later offsets shift), as in HF */
    }
    if (unk_len) add_sym(s, &nsym, t->unk_id, unk_len);
    if (nsym > 1) merge_all(t, s, nsym);
    for (size_t i = 0; i < nsym; i++)
        if (s->sym[i].len) push_token(s, s->sym[i].id, s->sym[i].len);
}

static bool can_split(const tok_tokenizer *t, uint32_t c1, uint32_t c2) {
    int i1 = c1 < 128 ? (int)c1 : c1 == 0x2581 ? 128 : -1;
    int i2 = c2 < 128 ? (int)c2 : c2 == 0x2581 ? 128 : -1;
    if (i1 >= 0 && i2 >= 0) return !(t->ascii_joins[i1][i2 >> 6] >> (i2 & 63) & 1);
    uint64_t v;
    return !tok_u64map_get(&t->joins, (uint64_t)c1 << 21 | c2, &v);
}

/* Chunks are looked up this many ahead of use: the slot first, then (half as far ahead) the
 * entry it points to, so that the cache misses of several chunks overlap. */
#define AHEAD 16

void tok_bpe_word(const tok_tokenizer *t, tok_scratch *s, const unsigned char *w, size_t n) {
    if (t->ignore_merges) {
        int32_t id = tok_strmap_get(&t->model_map, (const char *)w, n);
        if (id >= 0) {
            push_token(s, id, (uint32_t)n);
            return;
        }
    }
    /* 1. Characters, and the cuts between chunks: chunk k is bytes [cut[k], cut[k+1]) and
     *    characters [first[k], first[k+1]); hash[k] is 0 for a one-character piece. */
    tok_scratch_reserve_chars(s, n);
    size_t nchars = 0, nchunk = 0;
    uint32_t prev_cp = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = tok_utf8_decode(w + i, &cp);
        int32_t id = tok_char_id(t, cp);
        if (!nchars ||
            (t->chunking && s->cid[nchars - 1] >= 0 && id >= 0 && can_split(t, prev_cp, cp))) {
            s->cut[nchunk] = (uint32_t)i;
            s->first[nchunk++] = (uint32_t)nchars;
        }
        s->cid[nchars] = id;
        s->clen[nchars++] = (uint32_t)len;
        prev_cp = cp;
        i += (size_t)len;
    }
    s->cut[nchunk] = (uint32_t)n;
    s->first[nchunk] = (uint32_t)nchars;
    for (size_t k = 0; k < nchunk; k++) {
        size_t len = s->cut[k + 1] - s->cut[k];
        bool single = s->first[k + 1] - s->first[k] == 1 && s->cid[s->first[k]] >= 0;
        s->hash[k] = single ? 0 : eft_hash64(w + s->cut[k], len) | 1; /* 0 marks single */
        if (k < AHEAD && s->hash[k]) tok_cache_prefetch(s->cache, s->hash[k], false);
    }
    /* 2. Each chunk: a one-character piece, a cached chunk, or BPE (then cached). */
    for (size_t k = 0; k < nchunk; k++) {
        if (k + AHEAD < nchunk && s->hash[k + AHEAD])
            tok_cache_prefetch(s->cache, s->hash[k + AHEAD], false);
        if (k + AHEAD / 2 < nchunk && s->hash[k + AHEAD / 2])
            tok_cache_prefetch(s->cache, s->hash[k + AHEAD / 2], true);
        const unsigned char *c = w + s->cut[k];
        size_t len = s->cut[k + 1] - s->cut[k], c0 = s->first[k];
        if (!s->hash[k]) {
            push_token(s, s->cid[c0], (uint32_t)len);
        } else if (!tok_cache_get(s->cache, c, len, s->hash[k], s)) {
            size_t before = s->ntok;
            bpe_chunk(t, s, c, len, s->cid + c0, s->clen + c0, s->first[k + 1] - c0);
            tok_cache_put(s->cache, c, len, s->hash[k], s->tid + before, s->tlen + before,
                          s->ntok - before);
        }
    }
}
