/* tok_model.c: the "model" section of tokenizer.json: a BPE vocabulary and its merges.
 *
 * Builds the tables the encoder reads: piece -> id, (left id, right id) -> (rank, merged id),
 * one-character pieces by code point, the 256 byte-fallback pieces, and the table of character
 * pairs that some merge joins (which decides where a word may be cut into chunks: tok_bpe.c).
 *
 * Checked here, each a user error naming the file: the model is BPE, vocab and merges exist,
 * ids are whole numbers 0..n-1 used once each, pieces are distinct UTF-8, every merge names two
 * pieces whose concatenation is a piece. Hugging Face's rules kept as they are: a merge listed
 * twice takes the later rank; legacy "a b" merges skip "#version" lines and need exactly one
 * space. Refused as unsupported: dropout, continuing_subword_prefix, end_of_word_suffix.
 */
#include "text/tok_internal.h"

#include "base/err.h"
#include "base/threads.h"
#include "io/json.h"

#include <stdio.h>
#include <string.h>

#define METASYMBOL 0x2581 /* "▁", Gemma's space: a frequent character, given a fast row */

static int fail_piece(const tok_tokenizer *t, const char *where, const char *s, size_t n,
                      const char *what) {
    char *q = tok_quote(s, n);
    eft_fail("%s: %s: %s %s. Check that the file is a complete tokenizer.json as Hugging Face "
             "tokenizers writes it.",
             t->name, where, q, what);
    eft_free(q);
    return -1;
}

/* Optional string field that must be absent, null or "". */
static int refuse_string(const tok_tokenizer *t, const cJSON *model, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, key);
    if (!v || cJSON_IsNull(v) || (cJSON_IsString(v) && !*v->valuestring)) return 0;
    return eft_fail("%s: model.%s is set; eft supports BPE without %s (as Gemma's tokenizer is). "
                    "Use a tokenizer.json whose model.%s is null.",
                    t->name, key, key, key);
}

static int get_flag(const tok_tokenizer *t, const cJSON *model, const char *key, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, key);
    *out = false;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v))
        return eft_fail("%s: model.%s must be true or false. Fix the file.", t->name, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int load_options(tok_tokenizer *t, const cJSON *model) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsString(type))
        return eft_fail("%s: model.type is missing. eft reads BPE tokenizers: the file needs "
                        "\"model\": {\"type\": \"BPE\", ...}.",
                        t->name);
    if (strcmp(type->valuestring, "BPE") != 0)
        return eft_fail("%s: model.type is \"%s\"; eft supports only BPE models (Gemma's "
                        "tokenizer is BPE). Use a BPE tokenizer.json.",
                        t->name, type->valuestring);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) &&
        !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return eft_fail("%s: model.dropout is set; eft tokenizes deterministically and does not "
                        "support BPE dropout. Set it to null.",
                        t->name);
    if (refuse_string(t, model, "continuing_subword_prefix") ||
        refuse_string(t, model, "end_of_word_suffix"))
        return -1;
    if (get_flag(t, model, "fuse_unk", &t->fuse_unk) ||
        get_flag(t, model, "byte_fallback", &t->byte_fallback) ||
        get_flag(t, model, "ignore_merges", &t->ignore_merges))
        return -1;
    return 0;
}

static int load_vocab(tok_tokenizer *t, const cJSON *vocab, size_t *max_len) {
    if (!cJSON_IsObject(vocab))
        return eft_fail("%s: model.vocab is missing or not an object of piece -> id. Check that "
                        "the file is a complete tokenizer.json.",
                        t->name);
    int64_t n = 0;
    for (const cJSON *c = vocab->child; c; c = c->next) n++;
    if (n == 0 || n > INT32_MAX / 2)
        return eft_fail("%s: model.vocab has %lld pieces. Check the file.", t->name, (long long)n);
    t->n_model = (int32_t)n;
    t->model_piece = eft_calloc((size_t)n, sizeof *t->model_piece);
    t->model_len = eft_calloc((size_t)n, sizeof *t->model_len);
    tok_strmap_init(&t->model_map, (size_t)n);
    for (const cJSON *c = vocab->child; c; c = c->next) {
        size_t len = strlen(c->string);
        if (!eft_json_is_integer(c) || c->valuedouble < 0 || c->valuedouble >= (double)n) {
            char what[160], id[40] = "an id that is not a number";
            if (cJSON_IsNumber(c)) snprintf(id, sizeof id, "id %.17g", c->valuedouble);
            snprintf(what, sizeof what,
                     "has %s; ids must be whole numbers from 0 to %lld, one "
                     "per piece",
                     id, (long long)n - 1);
            return fail_piece(t, "model.vocab", c->string, len, what);
        }
        int32_t id = (int32_t)c->valuedouble;
        if (t->model_piece[id]) {
            char what[96];
            snprintf(what, sizeof what, "has id %d, which another piece has too", id);
            return fail_piece(t, "model.vocab", c->string, len, what);
        }
        if (tok_utf8_check((const unsigned char *)c->string, len) != len)
            return fail_piece(t, "model.vocab", c->string, len, "is not valid UTF-8");
        t->model_piece[id] = tok_pool_add(t, c->string, len);
        t->model_len[id] = (uint32_t)len;
        *max_len = EFT_MAX(*max_len, len);
        if (tok_strmap_put(&t->model_map, t->model_piece[id], len, id) >= 0)
            return fail_piece(t, "model.vocab", c->string, len, "appears twice");
    }
    return 0;
}

static int32_t model_get(const tok_tokenizer *t, const char *s, size_t n) {
    return tok_strmap_get(&t->model_map, s, n);
}

static uint32_t last_cp(const char *s, size_t n) {
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    uint32_t cp;
    tok_utf8_decode((const unsigned char *)s + i, &cp);
    return cp;
}

static int small_index(uint32_t cp) {
    return cp < 128 ? (int)cp : cp == METASYMBOL ? 128 : -1;
}

static void note_join(tok_tokenizer *t, const char *a, size_t an, const char *b, size_t bn) {
    if (!an || !bn) {
        t->chunking = false; /* an empty piece joins anything to anything */
        return;
    }
    uint32_t c1 = last_cp(a, an), c2;
    tok_utf8_decode((const unsigned char *)b, &c2);
    int i1 = small_index(c1), i2 = small_index(c2);
    if (i1 >= 0 && i2 >= 0)
        t->ascii_joins[i1][i2 >> 6] |= 1ull << (i2 & 63);
    else
        tok_u64map_put(&t->joins, (uint64_t)c1 << 21 | c2, 1);
}

/* One merge, as ["a", "b"] or "a b"; *skip is set for a legacy "#version" line. */
static int merge_parts(const tok_tokenizer *t, const cJSON *m, size_t i, const char **a, size_t *an,
                       const char **b, size_t *bn, bool *skip) {
    *a = *b = "", *an = *bn = 0;
    *skip = false;
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
        cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring, *an = strlen(*a);
        *b = m->child->next->valuestring, *bn = strlen(*b);
        return 0;
    }
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!strncmp(s, "#version", 8)) return *skip = true, 0;
        if (sp && !strchr(sp + 1, ' ')) {
            *a = s, *an = (size_t)(sp - s);
            *b = sp + 1, *bn = strlen(sp + 1);
            return 0;
        }
    }
    return eft_fail("%s: model.merges[%zu] must be a pair [\"left\", \"right\"] or a string "
                    "\"left right\" with one space. Check the file.",
                    t->name, i);
}

typedef struct merge_ref {
    const char *a, *b;
    size_t an, bn, index;   /* index: the position in model.merges, for messages */
    int32_t ia, ib, merged; /* -1 when not in the vocabulary */
} merge_ref;

/* Looks up the pieces of every merge. The lookups are independent and miss the cache, so they
 * run on all threads; everything that writes the tables stays serial. */
static void resolve_merges(const tok_tokenizer *t, merge_ref *r, size_t n, size_t max_len) {
#pragma omp parallel num_threads(eft_threads())
    {
        char *cat = eft_malloc(max_len + 1);
#pragma omp for schedule(static)
        for (size_t k = 0; k < n; k++) {
            r[k].ia = model_get(t, r[k].a, r[k].an);
            r[k].ib = model_get(t, r[k].b, r[k].bn);
            r[k].merged = -1;
            if (r[k].ia < 0 || r[k].ib < 0 || r[k].an + r[k].bn > max_len) continue;
            memcpy(cat, r[k].a, r[k].an);
            memcpy(cat + r[k].an, r[k].b, r[k].bn);
            r[k].merged = model_get(t, cat, r[k].an + r[k].bn);
        }
        eft_free(cat);
    }
}

static int load_merges(tok_tokenizer *t, const cJSON *merges, size_t max_len) {
    if (!cJSON_IsArray(merges))
        return eft_fail("%s: model.merges is missing or not a list. Check that the file is a "
                        "complete tokenizer.json.",
                        t->name);
    size_t n = 0, i = 0;
    for (const cJSON *m = merges->child; m; m = m->next) n++;
    merge_ref *r = eft_malloc((n + 1) * sizeof *r);
    size_t nr = 0;
    int rc = 0;
    for (const cJSON *m = merges->child; m && !rc; m = m->next, i++) {
        bool skip;
        merge_ref *x = &r[nr];
        x->index = i;
        rc = merge_parts(t, m, i, &x->a, &x->an, &x->b, &x->bn, &skip);
        nr += !rc && !skip; /* a legacy "#version" line takes no rank */
    }
    if (!rc) resolve_merges(t, r, nr, max_len);
    tok_u64map_init(&t->merges, nr);
    tok_u64map_init(&t->joins, nr / 8 + 16);
    t->chunking = true;
    for (size_t k = 0; k < nr && !rc; k++) {
        const merge_ref *x = &r[k];
        char where[64];
        if (x->ia < 0 || x->merged < 0)
            snprintf(where, sizeof where, "model.merges[%zu]", x->index);
        if (x->ia < 0 || x->ib < 0) {
            rc = fail_piece(t, where, x->ia < 0 ? x->a : x->b, x->ia < 0 ? x->an : x->bn,
                            "is not in model.vocab");
        } else if (x->merged < 0) {
            char *cat = eft_asprintf("%.*s%.*s", (int)x->an, x->a, (int)x->bn, x->b);
            rc = fail_piece(t, where, cat, x->an + x->bn,
                            "(the two pieces joined) is not in model.vocab");
            eft_free(cat);
        } else { /* a pair listed twice keeps the later rank, as in Hugging Face */
            tok_u64map_put(&t->merges, (uint64_t)x->ia << 32 | (uint32_t)x->ib,
                           (uint64_t)k << 32 | (uint32_t)x->merged);
            note_join(t, x->a, x->an, x->b, x->bn);
        }
    }
    eft_free(r);
    return rc;
}

static void index_pieces(tok_tokenizer *t) {
    for (int i = 0; i < 128; i++) t->ascii_id[i] = -1;
    t->bmp_id = eft_malloc(0x10000 * sizeof *t->bmp_id);
    for (int i = 0; i < 0x10000; i++) t->bmp_id[i] = -1;
    tok_u64map_init(&t->astral_id, 4096);
    for (int32_t id = 0; id < t->n_model; id++) {
        uint32_t cp;
        if (!t->model_len[id]) continue;
        if ((uint32_t)tok_utf8_decode((const unsigned char *)t->model_piece[id], &cp) !=
            t->model_len[id])
            continue;
        if (cp < 128) t->ascii_id[cp] = id;
        if (cp < 0x10000)
            t->bmp_id[cp] = id;
        else
            tok_u64map_put(&t->astral_id, cp, (uint64_t)id);
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = model_get(t, name, 6);
    }
}

int tok_model_load(tok_tokenizer *t, const cJSON *model) {
    if (!cJSON_IsObject(model))
        return eft_fail("%s: \"model\" is missing or not an object. Check that the file is a "
                        "complete tokenizer.json.",
                        t->name);
    size_t max_len = 0;
    if (load_options(t, model) ||
        load_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), &max_len) ||
        load_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), max_len))
        return -1;
    index_pieces(t);
    t->unk_id = -1;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (unk && !cJSON_IsNull(unk)) {
        if (!cJSON_IsString(unk))
            return eft_fail("%s: model.unk_token must be a string or null. Fix the file.", t->name);
        t->unk_id = model_get(t, unk->valuestring, strlen(unk->valuestring));
        if (t->unk_id < 0)
            return fail_piece(t, "model.unk_token", unk->valuestring, strlen(unk->valuestring),
                              "is not in model.vocab");
    }
    return 0;
}

void tok_model_free(tok_tokenizer *t) {
    eft_free(t->model_piece);
    eft_free(t->model_len);
    eft_free(t->bmp_id);
    tok_strmap_free(&t->model_map);
    tok_u64map_free(&t->merges);
    tok_u64map_free(&t->joins);
    tok_u64map_free(&t->astral_id);
}
