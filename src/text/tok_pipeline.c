/* tok_pipeline.c: the normalizer, pre-tokenizer, post-processor and decoder of tokenizer.json.
 *
 * Parses the four sections into flat lists of steps (nested Sequences flattened) and applies the
 * first two to text. Only the kinds Gemma's tokenizer uses are supported; any other is refused
 * at load with an error that names it, so that a tokenizer eft cannot reproduce is never used.
 *
 * Alignments follow Hugging Face's NormalizedString: each normalized byte knows the original
 * bytes [ostart, oend) it came from. A byte that was copied maps to its whole character; the
 * bytes a Replace writes all map to the alignment of the last byte of the text it replaced.
 * Tokens later take ostart of their first byte and oend of their last.
 */
#include "text/tok_internal.h"

#include "base/err.h"
#include "io/json.h"

#include <stdio.h>
#include <string.h>

/* ---- parsing ---- */

static const char *type_of(const cJSON *o) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

static int unsupported(const tok_tokenizer *t, const char *section, const char *what) {
    return eft_fail("%s: %s: %s is not supported by eft, which implements the kinds Gemma's "
                    "tokenizer uses (see src/text/tokenizer.h). Use a tokenizer.json without it.",
                    t->name, section, what);
}

/* A {"String": "..."} pattern; regex patterns are refused. */
static int string_pattern(tok_tokenizer *t, const cJSON *o, const char *section, const char **pat,
                          uint32_t *len) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(p, "String");
    if (cJSON_GetObjectItemCaseSensitive(p, "Regex"))
        return unsupported(t, section, "a Regex pattern");
    if (!cJSON_IsString(s))
        return eft_fail("%s: %s: \"pattern\" must be {\"String\": \"...\"}. Fix the file.", t->name,
                        section);
    size_t n = strlen(s->valuestring);
    if (!n) return eft_fail("%s: %s: the pattern is empty. Fix the file.", t->name, section);
    if (tok_utf8_check((const unsigned char *)s->valuestring, n) != n)
        return eft_fail("%s: %s: the pattern is not valid UTF-8. Fix the file.", t->name, section);
    *pat = tok_pool_add(t, s->valuestring, n);
    *len = (uint32_t)n;
    return 0;
}

static int replace_step(tok_tokenizer *t, const cJSON *o, const char *section, tok_replace *r) {
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(o, "content");
    if (string_pattern(t, o, section, &r->pat, &r->pat_len)) return -1;
    if (!cJSON_IsString(content))
        return eft_fail("%s: %s: Replace needs a \"content\" string. Fix the file.", t->name,
                        section);
    r->content_len = (uint32_t)strlen(content->valuestring);
    if (tok_utf8_check((const unsigned char *)content->valuestring, r->content_len) !=
        r->content_len)
        return eft_fail("%s: %s: the Replace content is not valid UTF-8. Fix the file.", t->name,
                        section);
    r->content = tok_pool_add(t, content->valuestring, r->content_len);
    return 0;
}

/* Appends the steps of one section's object (a Sequence is walked recursively, as deep as cJSON
 * nests, which it limits). leaf handles one step and returns 0 or -1. */
typedef int (*leaf_fn)(tok_tokenizer *t, const cJSON *o, const char *type);

static int walk(tok_tokenizer *t, const cJSON *o, const char *section, const char *list_key,
                leaf_fn leaf) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = type_of(o);
    if (!cJSON_IsObject(o) || !type)
        return eft_fail("%s: %s must be null or an object with a \"type\". Fix the file.", t->name,
                        section);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, list_key);
        if (!cJSON_IsArray(list))
            return eft_fail("%s: %s: a Sequence needs a \"%s\" list. Fix the file.", t->name,
                            section, list_key);
        for (const cJSON *c = list->child; c; c = c->next)
            if (walk(t, c, section, list_key, leaf)) return -1;
        return 0;
    }
    return leaf(t, o, type);
}

static int normalizer_leaf(tok_tokenizer *t, const cJSON *o, const char *type) {
    char what[96];
    snprintf(what, sizeof what, "the %.60s normalizer", type);
    if (strcmp(type, "Replace") != 0) return unsupported(t, "normalizer", what);
    t->norm = eft_realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *t->norm);
    return replace_step(t, o, "normalizer", &t->norm[t->n_norm++]);
}

static int pre_tokenizer_leaf(tok_tokenizer *t, const cJSON *o, const char *type) {
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                        "MergedWithNext", "Contiguous"};
    char what[96];
    snprintf(what, sizeof what, "the %.60s pre-tokenizer", type);
    if (strcmp(type, "Split") != 0) return unsupported(t, "pre_tokenizer", what);
    const cJSON *invert = cJSON_GetObjectItemCaseSensitive(o, "invert");
    if (cJSON_IsTrue(invert)) return unsupported(t, "pre_tokenizer", "Split with invert: true");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "behavior");
    int behavior = -1;
    for (int i = 0; cJSON_IsString(b) && i < (int)EFT_ARRAY_LEN(names); i++)
        if (!strcmp(b->valuestring, names[i])) behavior = i;
    if (behavior < 0)
        return eft_fail("%s: pre_tokenizer: Split needs a \"behavior\": Removed, Isolated, "
                        "MergedWithPrevious, MergedWithNext or Contiguous. Fix the file.",
                        t->name);
    t->split = eft_realloc(t->split, (size_t)(t->n_split + 1) * sizeof *t->split);
    tok_split *sp = &t->split[t->n_split++];
    sp->behavior = (enum tok_split_behavior)behavior;
    return string_pattern(t, o, "pre_tokenizer", &sp->pat, &sp->pat_len);
}

static int decoder_leaf(tok_tokenizer *t, const cJSON *o, const char *type) {
    tok_dec_step st = {0};
    if (!strcmp(type, "Replace")) {
        st.kind = TOK_DEC_REPLACE;
        if (replace_step(t, o, "decoder", &st.replace)) return -1;
    } else if (!strcmp(type, "ByteFallback")) {
        st.kind = TOK_DEC_BYTE_FALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        st.kind = TOK_DEC_FUSE;
    } else if (!strcmp(type, "Strip")) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "content");
        int64_t start = 0, stop = 0;
        if (eft_json_int(o, "start", &start, "decoder Strip") ||
            eft_json_int(o, "stop", &stop, "decoder Strip")) {
            eft_err_context("%s", t->name);
            return -1;
        }
        uint32_t cp = 0;
        size_t len = cJSON_IsString(c) ? strlen(c->valuestring) : 0;
        if (!len || tok_utf8_check((const unsigned char *)c->valuestring, len) != len ||
            (size_t)tok_utf8_decode((const unsigned char *)c->valuestring, &cp) != len ||
            start < 0 || stop < 0 || start > 1 << 20 || stop > 1 << 20)
            return eft_fail("%s: decoder: Strip needs one \"content\" character and small "
                            "non-negative \"start\" and \"stop\". Fix the file.",
                            t->name);
        st.kind = TOK_DEC_STRIP;
        st.strip_cp = cp;
        st.strip_start = (int)start, st.strip_stop = (int)stop;
    } else {
        char what[96];
        snprintf(what, sizeof what, "the %.60s decoder", type);
        return unsupported(t, "decoder", what);
    }
    t->dec = eft_realloc(t->dec, (size_t)(t->n_dec + 1) * sizeof *t->dec);
    t->dec[t->n_dec++] = st;
    return 0;
}

/* TemplateProcessing's "single" template: special tokens around one Sequence "A". */
static int post_processor(tok_tokenizer *t, const cJSON *o) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = type_of(o);
    if (!type || strcmp(type, "TemplateProcessing") != 0) {
        char what[96];
        snprintf(what, sizeof what, "the %.60s post-processor", type ? type : "untyped");
        return unsupported(t, "post_processor", what);
    }
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
    if (!cJSON_IsArray(single))
        return eft_fail("%s: post_processor: \"single\" must be a list of SpecialToken and "
                        "Sequence items. Fix the file.",
                        t->name);
    bool seen_a = false;
    for (const cJSON *it = single->child; it; it = it->next) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(seq ? seq : sp, "id");
        if (!cJSON_IsString(name))
            return eft_fail("%s: post_processor: each \"single\" item must be {\"Sequence\": "
                            "{\"id\": \"A\"}} or {\"SpecialToken\": {\"id\": NAME}}. Fix the file.",
                            t->name);
        if (seq) {
            if (strcmp(name->valuestring, "A") != 0 || seen_a)
                return eft_fail("%s: post_processor: the single template must hold Sequence "
                                "\"A\" once. Fix the file.",
                                t->name);
            seen_a = true;
            continue;
        }
        const cJSON *entry = cJSON_GetObjectItemCaseSensitive(specials, name->valuestring);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids");
        if (!cJSON_IsArray(ids))
            return eft_fail("%s: post_processor: special token \"%s\" has no \"ids\" list in "
                            "special_tokens. Fix the file.",
                            t->name, name->valuestring);
        for (const cJSON *id = ids->child; id; id = id->next) {
            if (!eft_json_is_integer(id) || id->valuedouble < 0 || id->valuedouble >= INT32_MAX)
                return eft_fail("%s: post_processor: special token \"%s\" has an id that is "
                                "not a valid token id. Fix the file.",
                                t->name, name->valuestring);
            int32_t **list = seen_a ? &t->post_post : &t->post_pre;
            int *n = seen_a ? &t->n_post_post : &t->n_post_pre;
            *list = eft_realloc(*list, (size_t)(*n + 1) * sizeof **list);
            (*list)[(*n)++] = (int32_t)id->valuedouble;
        }
    }
    if (!seen_a)
        return eft_fail("%s: post_processor: the single template has no Sequence \"A\". Fix the "
                        "file.",
                        t->name);
    return 0;
}

int tok_pipeline_load(tok_tokenizer *t, const cJSON *root) {
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    t->has_decoder = dec && !cJSON_IsNull(dec);
    return walk(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer",
                "normalizers", normalizer_leaf) ||
                   walk(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pre_tokenizer",
                        "pretokenizers", pre_tokenizer_leaf) ||
                   walk(t, dec, "decoder", "decoders", decoder_leaf) ||
                   post_processor(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"))
               ? -1
               : 0;
}

void tok_pipeline_free(tok_tokenizer *t) {
    eft_free(t->norm);
    eft_free(t->split);
    eft_free(t->dec);
    eft_free(t->post_pre);
    eft_free(t->post_post);
}

/* ---- normalizing ---- */

/* Where the next match of r starts in s[i..n), or n. */
static size_t find(const tok_replace *r, const unsigned char *s, size_t i, size_t n) {
    unsigned char first = (unsigned char)r->pat[0];
    while (i + r->pat_len <= n) {
        const unsigned char *p = memchr(s + i, first, n - i - r->pat_len + 1);
        if (!p) break;
        i = (size_t)(p - s);
        if (!memcmp(p, r->pat, r->pat_len)) return i;
        i++;
    }
    return n;
}

/* Per-byte alignment of copied bytes src[a..b): from the arrays, or, when so is NULL, each
 * byte's own character in the original text at base. */
static void align_copy(const unsigned char *src, const uint32_t *so, const uint32_t *eo,
                       size_t base, size_t a, size_t b, uint32_t *dso, uint32_t *deo) {
    if (so) {
        memcpy(dso, so + a, (b - a) * sizeof *dso);
        memcpy(deo, eo + a, (b - a) * sizeof *deo);
        return;
    }
    for (size_t i = a; i < b;) {
        uint32_t cp;
        size_t len = (size_t)tok_utf8_decode(src + i, &cp);
        for (size_t k = 0; k < len; k++) {
            dso[i - a + k] = (uint32_t)(base + i);
            deo[i - a + k] = (uint32_t)(base + i + len);
        }
        i += len;
    }
}

/* One Replace from src[0..n) into dst; returns the new length. dso is NULL without offsets. */
static size_t replace(const tok_replace *r, const unsigned char *src, size_t n, const uint32_t *so,
                      const uint32_t *eo, size_t base, unsigned char *dst, uint32_t *dso,
                      uint32_t *deo) {
    size_t o = 0;
    /* Gemma's " " -> "▁" (a one-byte pattern, dense matches): byte loops beat memchr */
    unsigned char p = (unsigned char)r->pat[0];
    if (r->pat_len == 1 && !dso) {
        for (size_t i = 0; i < n; i++) {
            if (src[i] != p) {
                dst[o++] = src[i];
                continue;
            }
            for (uint32_t k = 0; k < r->content_len; k++) dst[o++] = (unsigned char)r->content[k];
        }
        return o;
    }
    if (r->pat_len == 1 && !so) { /* with offsets, from the original text */
        for (size_t i = 0; i < n;) {
            size_t len = src[i] < 0x80 ? 1 : src[i] < 0xE0 ? 2 : src[i] < 0xF0 ? 3 : 4;
            const unsigned char *from = src[i] == p ? (const unsigned char *)r->content : src + i;
            size_t count = src[i] == p ? r->content_len : len;
            for (size_t k = 0; k < count; k++) {
                dst[o + k] = from[k];
                dso[o + k] = (uint32_t)(base + i), deo[o + k] = (uint32_t)(base + i + len);
            }
            o += count;
            i += len;
        }
        return o;
    }
    for (size_t i = 0; i < n;) {
        size_t m = find(r, src, i, n);
        memcpy(dst + o, src + i, m - i);
        if (dso) align_copy(src, so, eo, base, i, m, dso + o, deo + o);
        o += m - i;
        if (m == n) break;
        memcpy(dst + o, r->content, r->content_len);
        if (dso) {
            size_t last = m + r->pat_len - 1, c = last;
            uint32_t s, e;
            if (so) {
                s = so[last], e = eo[last];
            } else { /* the character holding the last byte ends where the match ends */
                while ((src[c] & 0xC0) == 0x80) c--;
                s = (uint32_t)(base + c), e = (uint32_t)(base + last + 1);
            }
            for (uint32_t k = 0; k < r->content_len; k++) dso[o + k] = s, deo[o + k] = e;
        }
        o += r->content_len;
        i = m + r->pat_len;
    }
    return o;
}

static size_t replaced_len(const tok_replace *r, const unsigned char *s, size_t n) {
    size_t out = n;
    if (r->pat_len == 1) {
        size_t count = 0;
        for (size_t i = 0; i < n; i++) count += s[i] == (unsigned char)r->pat[0];
        return n + count * r->content_len - count;
    }
    for (size_t i = find(r, s, 0, n); i < n; i = find(r, s, i + r->pat_len, n))
        out = out - r->pat_len + r->content_len;
    return out;
}

void tok_normalize(const tok_tokenizer *t, tok_scratch *sc, const char *s, size_t n, size_t base,
                   bool offsets, size_t *out_n) {
    tok_scratch_reserve_norm(sc, n);
    if (!t->n_norm) {
        memcpy(sc->norm, s, n);
        if (offsets)
            align_copy((const unsigned char *)s, NULL, NULL, base, 0, n, sc->ostart, sc->oend);
        *out_n = n;
        return;
    }
    /* Steps alternate between the two buffers; cur says where the text is (-1: the input).
     * Pointers are taken after each reserve, which may move the buffers. */
    int cur = -1;
    for (int k = 0; k < t->n_norm; k++) {
        const unsigned char *src = cur < 0 ? (const unsigned char *)s : cur ? sc->norm2 : sc->norm;
        tok_scratch_reserve_norm(sc, replaced_len(&t->norm[k], src, n));
        int dst = cur == 0;
        src = cur < 0 ? (const unsigned char *)s : cur ? sc->norm2 : sc->norm;
        const uint32_t *so = cur < 0 ? NULL : cur ? sc->ostart2 : sc->ostart;
        const uint32_t *eo = cur < 0 ? NULL : cur ? sc->oend2 : sc->oend;
        n = replace(&t->norm[k], src, n, so, eo, base, dst ? sc->norm2 : sc->norm,
                    !offsets ? NULL
                    : dst    ? sc->ostart2
                             : sc->ostart,
                    dst ? sc->oend2 : sc->oend);
        cur = dst;
    }
    if (cur == 1) {
        memcpy(sc->norm, sc->norm2, n);
        if (offsets) {
            memcpy(sc->ostart, sc->ostart2, n * sizeof *sc->ostart);
            memcpy(sc->oend, sc->oend2, n * sizeof *sc->oend);
        }
    }
    *out_n = n;
}

char *tok_normalize_string(const tok_tokenizer *t, const char *s, size_t n, size_t *out_n) {
    char *cur = eft_strndup(s, n);
    for (int k = 0; k < t->n_norm; k++) {
        size_t m = replaced_len(&t->norm[k], (const unsigned char *)cur, n);
        char *next = eft_malloc(m + 1);
        n = replace(&t->norm[k], (const unsigned char *)cur, n, NULL, NULL, 0,
                    (unsigned char *)next, NULL, NULL);
        next[n] = 0;
        eft_free(cur);
        cur = next;
    }
    *out_n = n;
    return cur;
}

/* ---- pre-tokenizing ---- */

/* Splits [a, b) of text by sp into out (start, end pairs), as Hugging Face's
 * NormalizedString::split does for the behaviour; returns the pairs written. */
static size_t split_range(const tok_split *sp, const unsigned char *text, size_t a, size_t b,
                          size_t *out) {
    tok_replace pat = {sp->pat, NULL, sp->pat_len, 0};
    size_t n = 0;
    bool prev_match = false;
    enum tok_split_behavior bh = sp->behavior;
    for (size_t i = a; i < b;) {
        size_t m = a + find(&pat, text + a, i - a, b - a);
        size_t seg_end[2] = {m, m < b ? m + sp->pat_len : m};
        for (int is_match = 0; is_match < 2; is_match++) {
            size_t s0 = is_match ? m : i, s1 = seg_end[is_match];
            if (s0 == s1) continue;
            bool extend = false;
            switch (bh) {
            case TOK_SPLIT_REMOVED:
                if (is_match) goto next_seg;
                break;
            case TOK_SPLIT_ISOLATED:
                break;
            case TOK_SPLIT_MERGED_PREV:
                extend = is_match && !prev_match && n;
                break;
            case TOK_SPLIT_CONTIGUOUS:
                extend = (bool)is_match == prev_match && n;
                break;
            case TOK_SPLIT_MERGED_NEXT:
                /* HF folds from the right: a match joins the text right after it. Read left to
                 * right, text extends the piece a match just opened. */
                extend = !is_match && prev_match && n;
                break;
            }
            if (extend)
                out[2 * n - 1] = s1;
            else
                out[2 * n] = s0, out[2 * n + 1] = s1, n++;
        next_seg:
            prev_match = is_match;
        }
        i = seg_end[1];
    }
    return n;
}

size_t tok_pre_tokenize(const tok_tokenizer *t, tok_scratch *sc, size_t a, size_t b) {
    tok_scratch_reserve_words(sc, b - a + 1);
    sc->words[0] = a, sc->words[1] = b;
    size_t n = a < b;
    for (int k = 0; k < t->n_split && n; k++) {
        size_t m = 0;
        for (size_t w = 0; w < n; w++)
            m += split_range(&t->split[k], sc->norm, sc->words[2 * w], sc->words[2 * w + 1],
                             sc->words2 + 2 * m);
        size_t *tmp = sc->words;
        sc->words = sc->words2, sc->words2 = tmp;
        n = m;
    }
    return n;
}
