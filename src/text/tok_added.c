/* tok_added.c: added tokens: loading them, and finding them in text.
 *
 * Hugging Face matches added tokens before anything else, on the raw text for tokens with
 * "normalized": false (all of Gemma's) and on the normalized text for the others, whether or not
 * they are special: leftmost match first, the longest at that position, matches never overlap.
 * That is exactly a greedy scan that tries, at each position, the longest token starting there;
 * a byte trie with a 256-way root does it, and positions whose byte starts no token cost one
 * table lookup.
 *
 * Flags, as Hugging Face applies them to a match: single_word drops a match that touches a word
 * character on either side (the scan still moves past it); lstrip widens it left over white space
 * (never before the previous match), rstrip right over white space. White space is Unicode
 * White_Space, as Rust's \s. Word characters are PCRE2's [\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}] plus the
 * two joiners, which is Rust's \w except for some symbols with the Other_Alphabetic property.
 *
 * Ids follow Hugging Face's loading rule: a content that is a model piece has that piece's id,
 * any other takes the next id after the model's, in file order. A file that declares other ids
 * is refused rather than silently renumbered, as are empty and repeated contents.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/tok_internal.h"

#include "base/err.h"
#include "io/json.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail_token(const tok_tokenizer *t, size_t i, const char *content, const char *what) {
    char *q = content ? tok_quote(content, strlen(content)) : NULL;
    eft_fail("%s: added_tokens[%zu]%s%s: %s. Check that the file is a complete tokenizer.json as "
             "Hugging Face tokenizers writes it.",
             t->name, i, q ? " " : "", q ? q : "", what);
    eft_free(q);
    return -1;
}

static int get_bool(const tok_tokenizer *t, size_t i, const cJSON *o, const char *key, bool dflt,
                    bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = dflt;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) {
        char what[64];
        snprintf(what, sizeof what, "\"%s\" must be true or false", key);
        return fail_token(t, i, NULL, what);
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* ---- the trie ---- */

typedef struct build_item {
    const char *s;
    uint32_t len;
    int32_t added;
} build_item;

static int cmp_item(const void *pa, const void *pb) {
    const build_item *a = pa, *b = pb;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, n);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* Builds the trie over items (sorted in place). Returns the index of a pattern that occurs
 * twice, or -1. An explicit stack keeps long patterns from deepening the C stack. */
static int32_t trie_build(tok_trie *tr, build_item *items, size_t n) {
    qsort(items, n, sizeof *items, cmp_item);
    for (size_t i = 1; i < n; i++)
        if (!cmp_item(&items[i - 1], &items[i])) return items[i].added;
    size_t total = 1;
    for (size_t i = 0; i < n; i++) total += items[i].len;
    tr->node = eft_malloc(total * sizeof *tr->node);
    tr->edge = eft_malloc(total * sizeof *tr->edge);
    memset(tr->root_child, 0, sizeof tr->root_child);
    struct frame {
        uint32_t node;
        size_t lo, hi, depth;
    } *stack = eft_malloc(total * sizeof *stack);
    size_t top = 0;
    uint32_t nedge = 0;
    tr->nnode = 1;
    stack[top++] = (struct frame){0, 0, n, 0};
    while (top) {
        struct frame f = stack[--top];
        struct tok_trie_node *nd = &tr->node[f.node];
        nd->added = -1;
        if (f.lo < f.hi && items[f.lo].len == f.depth) nd->added = items[f.lo++].added;
        nd->edge0 = nedge;
        nd->nedge = 0;
        for (size_t i = f.lo; i < f.hi;) {
            unsigned char byte = (unsigned char)items[i].s[f.depth];
            size_t j = i + 1;
            while (j < f.hi && (unsigned char)items[j].s[f.depth] == byte) j++;
            uint32_t child = tr->nnode++;
            tr->edge[nedge + nd->nedge++] = (struct tok_trie_edge){child, byte};
            if (f.node == 0) tr->root_child[byte] = child;
            stack[top++] = (struct frame){child, i, j, f.depth + 1};
            i = j;
        }
        nedge += nd->nedge;
    }
    eft_free(stack);
    return -1;
}

static uint32_t trie_step(const tok_trie *tr, uint32_t node, unsigned char byte) {
    const struct tok_trie_node *nd = &tr->node[node];
    const struct tok_trie_edge *e = tr->edge + nd->edge0;
    uint32_t lo = 0, hi = nd->nedge;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (e[mid].byte < byte)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nd->nedge && e[lo].byte == byte ? e[lo].child : 0;
}

/* ---- loading ---- */

static int load_one(tok_tokenizer *t, size_t i, const cJSON *o, int32_t *next_id) {
    tok_added *a = &t->added[i];
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(o, "content");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (!cJSON_IsObject(o) || !cJSON_IsString(content))
        return fail_token(t, i, NULL, "expected an object with a \"content\" string");
    if (!*content->valuestring) return fail_token(t, i, NULL, "the content is empty");
    if (!eft_json_is_integer(id))
        return fail_token(t, i, content->valuestring, "\"id\" must be a whole number");
    if (get_bool(t, i, o, "special", false, &a->special) ||
        get_bool(t, i, o, "normalized", !a->special, &a->normalized) ||
        get_bool(t, i, o, "single_word", false, &a->single_word) ||
        get_bool(t, i, o, "lstrip", false, &a->lstrip) ||
        get_bool(t, i, o, "rstrip", false, &a->rstrip))
        return -1;
    size_t len = strlen(content->valuestring);
    if (tok_utf8_check((const unsigned char *)content->valuestring, len) != len)
        return fail_token(t, i, content->valuestring, "the content is not valid UTF-8");
    a->content = tok_pool_add(t, content->valuestring, len);
    a->len = (uint32_t)len;
    int32_t model = tok_strmap_get(&t->model_map, a->content, len);
    a->id = model >= 0 ? model : (*next_id)++;
    if (id->valuedouble != a->id) {
        char what[200];
        snprintf(what, sizeof what,
                 "has id %.17g, but Hugging Face tokenizers gives it id %d "
                 "(a model piece keeps its own id; other added tokens follow the model's ids in "
                 "file order)",
                 id->valuedouble, a->id);
        return fail_token(t, i, a->content, what);
    }
    if (a->normalized) {
        size_t mn;
        char *m = tok_normalize_string(t, a->content, len, &mn);
        a->match = tok_pool_add(t, m, mn);
        a->match_len = (uint32_t)mn;
        eft_free(m);
    } else {
        a->match = a->content, a->match_len = a->len;
    }
    return 0;
}

static int build_tries(tok_tokenizer *t) {
    build_item *raw = eft_malloc(((size_t)t->n_added + 1) * sizeof *raw);
    build_item *norm = eft_malloc(((size_t)t->n_added + 1) * sizeof *norm);
    size_t nraw = 0, nnorm = 0;
    bool word = false;
    for (int32_t i = 0; i < t->n_added; i++) {
        const tok_added *a = &t->added[i];
        build_item it = {a->match, a->match_len, i};
        if (a->normalized)
            norm[nnorm++] = it;
        else
            raw[nraw++] = it;
        word |= a->single_word;
    }
    int32_t dup = -1;
    if (nraw) dup = trie_build(&t->trie_raw, raw, nraw);
    if (dup < 0 && nnorm) dup = trie_build(&t->trie_norm, norm, nnorm);
    eft_free(raw);
    eft_free(norm);
    if (dup >= 0)
        return fail_token(t, (size_t)dup, t->added[dup].content,
                          "another added token is matched by the same text");
    if (word) {
        int code;
        PCRE2_SIZE off;
        t->word_re =
            pcre2_compile((PCRE2_SPTR) "[\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]",
                          PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
        if (!t->word_re) return eft_fail_internal("tokenizer: the word-character pattern failed");
    }
    return 0;
}

int tok_added_load(tok_tokenizer *t, const cJSON *list) {
    bool none = !list || cJSON_IsNull(list);
    if (!none && !cJSON_IsArray(list))
        return eft_fail("%s: \"added_tokens\" must be a list. Check the file.", t->name);
    size_t n = none ? 0 : (size_t)cJSON_GetArraySize(list);
    t->added = eft_calloc(n + 1, sizeof *t->added);
    tok_strmap_init(&t->added_map, n);
    if (none) return build_tries(t);
    int32_t next_id = t->n_model;
    int rc = 0;
    size_t i = 0;
    for (const cJSON *o = list->child; o && !rc; o = o->next, i++) {
        if ((rc = load_one(t, i, o, &next_id))) break;
        t->n_added = (int32_t)i + 1;
        if (tok_strmap_put(&t->added_map, t->added[i].content, t->added[i].len, (int32_t)i) >= 0)
            rc = fail_token(t, i, t->added[i].content, "the same content is listed twice");
    }
    return rc ? rc : build_tries(t);
}

void tok_added_free(tok_tokenizer *t) {
    eft_free(t->added);
    tok_strmap_free(&t->added_map);
    eft_free(t->trie_raw.node);
    eft_free(t->trie_raw.edge);
    eft_free(t->trie_norm.node);
    eft_free(t->trie_norm.edge);
    pcre2_code_free(t->word_re);
}

/* ---- matching ---- */

static bool is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Whether the character at s[i] (or, with before, the one ending at s[i]) is a word character. */
static bool word_char(const tok_tokenizer *t, const char *s, size_t i, bool before) {
    size_t b = i;
    if (before) do
            b--;
        while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80);
    uint32_t c;
    size_t len = (size_t)tok_utf8_decode((const unsigned char *)s + b, &c);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int rc = pcre2_match(t->word_re, (PCRE2_SPTR)s + b, len, 0, PCRE2_ANCHORED, md, NULL);
    pcre2_match_data_free(md);
    return rc > 0;
}

/* The start of the white space that ends at s[start], not before floor. */
static size_t strip_left(const char *s, size_t start, size_t floor) {
    while (start > floor) {
        size_t b = start - 1;
        while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80) b--;
        uint32_t c;
        tok_utf8_decode((const unsigned char *)s + b, &c);
        if (!is_space(c)) break;
        start = b;
    }
    return start;
}

/* The end of the white space that starts at s[stop]. */
static size_t strip_right(const char *s, size_t stop, size_t n) {
    while (stop < n) {
        uint32_t c;
        int len = tok_utf8_decode((const unsigned char *)s + stop, &c);
        if (!is_space(c)) break;
        stop += (size_t)len;
    }
    return stop;
}

bool tok_added_next(const tok_tokenizer *t, const tok_trie *tr, const char *s, size_t n,
                    size_t *pos, size_t taken, tok_match *m) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = *pos; tr->nnode && i < n; i++) {
        uint32_t node = tr->root_child[u[i]];
        if (!node) continue;
        int32_t best = -1;
        size_t end = 0;
        for (size_t j = i + 1;; j++) {
            if (tr->node[node].added >= 0) best = tr->node[node].added, end = j;
            if (j == n || !(node = trie_step(tr, node, u[j]))) break;
        }
        if (best < 0) continue;
        const tok_added *a = &t->added[best];
        *pos = end;
        if (a->single_word &&
            ((i > 0 && word_char(t, s, i, true)) || (end < n && word_char(t, s, end, false)))) {
            i = end - 1; /* the scan still moves past a dropped match */
            continue;
        }
        size_t start = a->lstrip ? strip_left(s, i, taken) : i;
        m->start = start < taken ? taken : start;
        m->end = a->rstrip ? strip_right(s, end, n) : end;
        m->id = a->id;
        return true;
    }
    *pos = n;
    return false;
}
