/* tok_internal.h: the tokenizer's tables and the functions its files share (not public).
 *
 * A loaded tok_tokenizer is read-only: the only mutable state, each thread's scratch and chunk
 * cache, hangs off `scratch` behind a mutex that a thread takes once per tokenizer it uses.
 *
 *   tok_table.c     hash tables: string -> id over interned strings, u64 -> u64
 *   tok_load.c      tok_load / tok_free / the accessors, tokenizer_config.json
 *   tok_model.c     the BPE section: vocab, merges, byte fallback, the chunk-boundary table
 *   tok_pipeline.c  normalizer, pre-tokenizer, post-processor and decoder: parsing and applying
 *   tok_added.c     added tokens: the trie and the longest-match scan
 *   tok_bpe.c       BPE over one word: chunking and the merge heap
 *   tok_cache.c     each thread's cache of chunk -> tokens
 *   tok_scratch.c   per-thread scratch buffers
 *   tok_encode.c    the encode pipeline, offsets, batches, UTF-8 checks
 *   tok_decode.c    ids back to text
 */
#ifndef EFT_TEXT_TOK_INTERNAL_H
#define EFT_TEXT_TOK_INTERNAL_H

#include "text/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- hash tables (tok_table.c) ---- */

/* String -> value (a non-negative int32) over strings that live elsewhere (the tokenizer's pool)
 * and stay put. A slot holds the key's pointer, a check word (hash bits and the length) and the
 * value, so a lookup touches the slot and, on a likely hit, the key: two cache lines. */
typedef struct tok_strmap {
    struct tok_str_slot {
        const char *key; /* NULL = empty; NUL-terminated, no NUL inside */
        uint32_t check;  /* high hash bits | min(length, 0xFFF) */
        int32_t value;
    } * slot; /* [mask + 1] */
    uint32_t mask, count;
} tok_strmap;

/* Sized for `expected` keys, which is as many as it may hold. */
void tok_strmap_init(tok_strmap *m, size_t expected);
void tok_strmap_free(tok_strmap *m);
/* Inserts key[0..n) -> v (key must outlive the table); returns -1, or the value of an equal key
 * already there (then nothing is inserted). */
int32_t tok_strmap_put(tok_strmap *m, const char *key, size_t n, int32_t v);
int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t n); /* -1 when absent */

/* u64 -> u64 with linear probing. Keys must not be TOK_U64_EMPTY. */
#define TOK_U64_EMPTY UINT64_MAX
typedef struct tok_u64map {
    struct tok_u64_slot {
        uint64_t key, val;
    } * slot; /* [mask + 1] */
    uint32_t mask, shift;
    size_t count;
} tok_u64map;

void tok_u64map_init(tok_u64map *m, size_t expected);
void tok_u64map_free(tok_u64map *m);
void tok_u64map_put(tok_u64map *m, uint64_t key, uint64_t val); /* replaces an existing value */

static inline bool tok_u64map_get(const tok_u64map *m, uint64_t key, uint64_t *val) {
    uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> m->shift);
    for (;;) {
        const struct tok_u64_slot *s = &m->slot[i];
        if (s->key == key) {
            *val = s->val;
            return true;
        }
        if (s->key == TOK_U64_EMPTY) return false;
        i = (i + 1) & m->mask;
    }
}

/* ---- the tokenizer ---- */

typedef struct tok_added {
    const char *content; /* points into the tokenizer's string pool */
    uint32_t len;
    const char *match; /* what is matched: content, or its normalized form when normalized */
    uint32_t match_len;
    int32_t id;
    bool special, single_word, lstrip, rstrip, normalized;
} tok_added;

/* A byte trie over added-token contents, for the leftmost-longest scan. */
typedef struct tok_trie {
    struct tok_trie_node {
        int32_t added;  /* index into tok_tokenizer.added ending here, or -1 */
        uint32_t edge0; /* first edge */
        uint32_t nedge;
    } * node; /* [nnode]; node 0 is the root */
    struct tok_trie_edge {
        uint32_t child;
        unsigned char byte;
    } * edge;                        /* [nedge], each node's edges sorted by byte */
    uint32_t nnode, root_child[256]; /* root's children by byte, 0 = none */
} tok_trie;

typedef struct tok_replace {
    const char *pat, *content; /* in the string pool */
    uint32_t pat_len, content_len;
} tok_replace;

enum tok_split_behavior {
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_MERGED_PREV,
    TOK_SPLIT_MERGED_NEXT,
    TOK_SPLIT_CONTIGUOUS,
};
typedef struct tok_split {
    const char *pat;
    uint32_t pat_len;
    enum tok_split_behavior behavior;
} tok_split;

enum tok_dec_kind { TOK_DEC_REPLACE, TOK_DEC_BYTE_FALLBACK, TOK_DEC_FUSE, TOK_DEC_STRIP };
typedef struct tok_dec_step {
    enum tok_dec_kind kind;
    tok_replace replace; /* TOK_DEC_REPLACE */
    uint32_t strip_cp;   /* TOK_DEC_STRIP: the character, and how many to strip each side */
    int strip_start, strip_stop;
} tok_dec_step;

typedef struct tok_scratch_registry tok_scratch_registry;

struct tok_tokenizer {
    char *name;      /* the file, for messages */
    uint64_t serial; /* unique per load, never reused: keys the per-thread scratch */

    /* Every string the tokenizer keeps (pieces, added contents, patterns), NUL-terminated, in
     * blocks that never move. */
    struct tok_pool_block *pool;

    /* The BPE model: ids 0..n_model-1, each with its piece. */
    int32_t n_model;
    const char **model_piece; /* [n_model] into pool */
    uint32_t *model_len;      /* [n_model] */
    tok_strmap model_map;     /* piece -> model id */
    tok_u64map merges;        /* (a << 32 | b) -> (rank << 32 | merged id) */
    int32_t ascii_id[128];    /* single-character pieces, by code point, -1 when absent */
    int32_t *bmp_id;          /* [0x10000] the same for the Basic Multilingual Plane */
    tok_u64map astral_id;     /* and for the planes above it */
    int32_t byte_id[256];     /* "<0xHH>" pieces for byte fallback, -1 when absent */
    int32_t unk_id;           /* the model's unk_token, -1 if none */
    bool byte_fallback, fuse_unk, ignore_merges;

    /* Chunking (see tok_bpe.c): no merge joins a piece ending in character c1 to one starting
     * with c2 unless (c1, c2) is in `joins`. `chunking` is false when the check cannot be made
     * (a merge with an empty side). */
    bool chunking;
    tok_u64map joins;             /* (c1 << 21 | c2) -> 1 */
    uint64_t ascii_joins[129][3]; /* bit c2 of row c1, for c1, c2 < 128 or the metasymbol (128) */

    /* Added tokens, in file order, matched on the raw text (normalized: false) or on the
     * normalized text (normalized: true). */
    tok_added *added;
    int32_t n_added;
    tok_strmap added_map;         /* content -> index into added */
    tok_trie trie_raw, trie_norm; /* empty (nnode 0) when no token of that kind */
    void *word_re;                /* pcre2_code for single_word's \w, when some token needs it */

    /* Every id's piece as tok_piece gives it (added content over model piece); NULL in gaps. */
    int32_t vocab_size;
    const char **piece;        /* [vocab_size] */
    uint32_t *piece_len;       /* [vocab_size] */
    unsigned char *is_special; /* [vocab_size] */

    tok_replace *norm; /* the normalizer: Replace steps in order */
    int n_norm;
    tok_split *split; /* the pre-tokenizer: Split steps in order */
    int n_split;
    int32_t *post_pre, *post_post; /* the post-processor's ids before and after the text */
    int n_post_pre, n_post_post;
    bool has_decoder;
    tok_dec_step *dec;
    int n_dec;

    int32_t bos_id, eos_id, pad_id;

    tok_scratch_registry *scratch;
};

/* Copies s[0..n) into the pool and returns it, NUL-terminated, valid until tok_free. */
const char *tok_pool_add(tok_tokenizer *t, const char *s, size_t n);
/* s[0..n) as a JSON string literal cut to about 40 characters, for error messages (owned). */
char *tok_quote(const char *s, size_t n);

/* Sections of tokenizer.json; each returns 0 or -1 with eft_fail naming t->name. */
int tok_model_load(tok_tokenizer *t, const cJSON *model);
int tok_added_load(tok_tokenizer *t, const cJSON *list);
int tok_pipeline_load(tok_tokenizer *t, const cJSON *root);
/* Builds piece/piece_len/is_special over model and added tokens. */
void tok_vocab_finish(tok_tokenizer *t);
void tok_model_free(tok_tokenizer *t);
void tok_added_free(tok_tokenizer *t);
void tok_pipeline_free(tok_tokenizer *t);

/* Decodes one UTF-8 character at s (valid UTF-8 assumed); returns its length. */
static inline int tok_utf8_decode(const unsigned char *s, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) return *cp = c, 1;
    if (c < 0xE0) return *cp = (c & 0x1Fu) << 6 | (s[1] & 0x3Fu), 2;
    if (c < 0xF0) return *cp = (c & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu), 3;
    *cp = (c & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu);
    return 4;
}
/* Offset of the first byte of s[0..n) that is not valid UTF-8 (as Rust's str accepts it:
 * shortest forms, no surrogates, at most U+10FFFF), or n. */
size_t tok_utf8_check(const unsigned char *s, size_t n);
/* The id of the one-character piece for code point cp, or -1. */
static inline int32_t tok_char_id(const tok_tokenizer *t, uint32_t cp) {
    if (cp < 128) return t->ascii_id[cp];
    if (cp < 0x10000) return t->bmp_id[cp];
    uint64_t v;
    return tok_u64map_get(&t->astral_id, cp, &v) ? (int32_t)v : -1;
}

/* ---- added tokens (tok_added.c) ---- */

typedef struct tok_match {
    size_t start, end; /* bytes of the text the token takes, stripped spaces included */
    int32_t id;
} tok_match;

/* The next added token in s[0..n) at or after *pos (leftmost, then longest, then lstrip/rstrip
 * and single_word as Hugging Face applies them); *pos moves past the match. `taken` is where the
 * previous match ended (lstrip never reaches before it). Returns false when there is none. */
bool tok_added_next(const tok_tokenizer *t, const tok_trie *trie, const char *s, size_t n,
                    size_t *pos, size_t taken, tok_match *m);

/* ---- per-thread scratch (tok_scratch.c) ---- */

typedef struct tok_cache tok_cache;

typedef struct tok_scratch {
    /* a normalized segment and, per byte, the original bytes it came from */
    unsigned char *norm, *norm2;
    uint32_t *ostart, *oend, *ostart2, *oend2;
    size_t norm_cap;
    /* pre-tokenized words: ranges into norm */
    size_t *words, *words2;
    size_t words_cap;
    /* one word's tokens: id and length in normalized bytes */
    int32_t *tid;
    uint32_t *tlen;
    size_t ntok, tok_cap;
    /* one word's characters and chunks (tok_bpe.c), and a chunk's BPE state */
    int32_t *cid;
    uint32_t *clen, *cut, *first;
    uint64_t *hash;
    size_t chars_cap;
    struct tok_sym {
        int32_t id, prev, next;
        uint32_t len;
    } * sym;
    uint64_t *heap_key; /* rank << 32 | position */
    int32_t *heap_new;
    size_t sym_cap; /* heap: 3 * sym_cap */
    tok_cache *cache;
} tok_scratch;

/* This thread's scratch for t, created on first use; owned by t. */
tok_scratch *tok_scratch_get(const tok_tokenizer *t);
void tok_scratch_init(tok_tokenizer *t); /* at load: the empty registry */
void tok_scratch_free_all(tok_tokenizer *t);
void tok_scratch_reserve_norm(tok_scratch *s, size_t n);
void tok_scratch_reserve_words(tok_scratch *s, size_t n);
void tok_scratch_reserve_tokens(tok_scratch *s, size_t n);
void tok_scratch_reserve_chars(tok_scratch *s, size_t n);

/* ---- BPE (tok_bpe.c) ---- */

/* Appends the tokens of one pre-tokenized word w[0..n) (valid UTF-8) to s->tid/s->tlen. */
void tok_bpe_word(const tok_tokenizer *t, tok_scratch *s, const unsigned char *w, size_t n);

/* ---- the chunk cache (tok_cache.c) ---- */

tok_cache *tok_cache_new(void);
void tok_cache_free(tok_cache *c);
/* On a hit appends the cached tokens of key[0..n) (h: its eft_hash64) to s->tid/s->tlen. */
bool tok_cache_get(tok_cache *c, const unsigned char *key, size_t n, uint64_t h, tok_scratch *s);
void tok_cache_put(tok_cache *c, const unsigned char *key, size_t n, uint64_t h, const int32_t *ids,
                   const uint32_t *lens, size_t ntok);
/* Starts loading what a lookup of hash h will read: its slot, or (entry) the entry that slot
 * points to, which needs the slot already loaded to be of use. */
void tok_cache_prefetch(const tok_cache *c, uint64_t h, bool entry);

/* ---- pipeline steps (tok_pipeline.c) ---- */

/* Normalizes s[0..n) (original offsets base..base+n) into sc->norm[0..*out_n); with offsets,
 * fills sc->ostart/oend for each normalized byte as Hugging Face aligns them. */
void tok_normalize(const tok_tokenizer *t, tok_scratch *sc, const char *s, size_t n, size_t base,
                   bool offsets, size_t *out_n);
/* The normalizer applied to a plain string (for normalized added tokens); owned by the caller. */
char *tok_normalize_string(const tok_tokenizer *t, const char *s, size_t n, size_t *out_n);
/* Splits norm[a..b) with the pre-tokenizer into sc->words (pairs start, end); returns the count. */
size_t tok_pre_tokenize(const tok_tokenizer *t, tok_scratch *sc, size_t a, size_t b);

#endif
