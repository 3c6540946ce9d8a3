/* tok_encode.c: text -> token ids (and byte offsets), through the whole pipeline:
 *
 *   raw text --added tokens (raw)--> segments --normalizer--> normalized text
 *            --added tokens (normalized)--> pieces --pre-tokenizer--> words --BPE--> tokens
 *   and the post-processor's tokens (<bos>) around the whole.
 *
 * Offsets are carried as Hugging Face carries them: each normalized byte knows its original
 * bytes (tok_pipeline.c), a token takes the start of its first byte and the end of its last.
 * Also here: UTF-8 validation (the one way encoding can fail) and the OpenMP batch.
 */
#include "text/tok_internal.h"

#include "base/err.h"
#include "base/threads.h"

#include <string.h>

size_t tok_utf8_check(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint64_t w;
        if (i + 8 <= n && (memcpy(&w, s + i, 8), !(w & 0x8080808080808080ull))) {
            i += 8;
            continue;
        }
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len = c >= 0xC2 && c <= 0xDF   ? 2
                     : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4
                                              : 0;
        if (!len || i + len > n) return i;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        uint32_t cp;
        tok_utf8_decode(s + i, &cp);
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return i;
        i += len;
    }
    return n;
}

/* ---- the output list ---- */

void tok_ids_clear(tok_ids *out) {
    out->n = 0;
}

void tok_ids_free(tok_ids *out) {
    eft_free(out->ids);
    eft_free(out->start);
    eft_free(out->end);
    *out = (tok_ids){0};
}

static void ids_reserve(tok_ids *out, size_t extra) {
    if (out->n + extra <= out->cap) return;
    size_t cap = out->cap ? out->cap : 64;
    while (cap < out->n + extra) cap *= 2;
    out->ids = eft_realloc(out->ids, cap * sizeof *out->ids);
    if (out->start) {
        out->start = eft_realloc(out->start, cap * sizeof *out->start);
        out->end = eft_realloc(out->end, cap * sizeof *out->end);
    }
    out->cap = cap;
}

static inline void ids_push(tok_ids *out, int32_t id, size_t start, size_t end) {
    if (out->n == out->cap) ids_reserve(out, 1);
    out->ids[out->n] = id;
    if (out->start) out->start[out->n] = (uint32_t)start, out->end[out->n] = (uint32_t)end;
    out->n++;
}

/* ---- the pipeline ---- */

typedef struct encoder {
    const tok_tokenizer *t;
    tok_scratch *s;
    tok_ids *out;
    bool offsets;
} encoder;

/* Pre-tokenizes and BPE-encodes the normalized bytes norm[a..b). */
static void encode_words(encoder *e, size_t a, size_t b) {
    tok_scratch *s = e->s;
    size_t nw = tok_pre_tokenize(e->t, s, a, b);
    for (size_t w = 0; w < nw; w++) {
        size_t pos = s->words[2 * w];
        s->ntok = 0;
        tok_bpe_word(e->t, s, s->norm + pos, s->words[2 * w + 1] - pos);
        if (e->out->cap - e->out->n < s->ntok) ids_reserve(e->out, s->ntok);
        for (size_t k = 0; k < s->ntok; k++) {
            size_t last = pos + s->tlen[k] - 1;
            ids_push(e->out, s->tid[k], e->offsets ? s->ostart[pos] : 0,
                     e->offsets ? s->oend[last] : 0);
            pos += s->tlen[k];
        }
    }
}

/* One run of raw text between added tokens: text[a..b). */
static void encode_segment(encoder *e, const char *text, size_t a, size_t b) {
    const tok_tokenizer *t = e->t;
    tok_scratch *s = e->s;
    size_t n;
    tok_normalize(t, s, text + a, b - a, a, e->offsets, &n);
    size_t pos = 0, taken = 0;
    tok_match m;
    while (tok_added_next(t, &t->trie_norm, (const char *)s->norm, n, &pos, taken, &m)) {
        if (m.start > taken) encode_words(e, taken, m.start);
        ids_push(e->out, m.id, e->offsets ? s->ostart[m.start] : 0,
                 e->offsets ? s->oend[m.end - 1] : 0);
        pos = taken = m.end;
    }
    if (taken < n) encode_words(e, taken, n);
}

static int encode(const tok_tokenizer *t, const char *text, size_t n, bool add_special,
                  tok_ids *out) {
    if (n >= UINT32_MAX)
        return eft_fail("text of %zu bytes: eft tokenizes texts under 4 GiB each. Split it.", n);
    size_t bad = tok_utf8_check((const unsigned char *)text, n);
    if (bad < n)
        return eft_fail("text is not valid UTF-8 at byte %zu (0x%02X). Tokenizers read UTF-8, as "
                        "Hugging Face's do: convert the data to UTF-8.",
                        bad, (unsigned char)text[bad]);
    encoder e = {t, tok_scratch_get(t), out, out->start != NULL};
    if (add_special)
        for (int i = 0; i < t->n_post_pre; i++) ids_push(out, t->post_pre[i], 0, 0);
    size_t pos = 0, taken = 0;
    tok_match m;
    /* The scan resumes after the white space an rstrip took, so tokens never overlap. */
    while (tok_added_next(t, &t->trie_raw, text, n, &pos, taken, &m)) {
        if (m.start > taken) encode_segment(&e, text, taken, m.start);
        ids_push(out, m.id, m.start, m.end);
        pos = taken = m.end;
    }
    if (taken < n) encode_segment(&e, text, taken, n);
    if (add_special)
        for (int i = 0; i < t->n_post_post; i++) ids_push(out, t->post_post[i], 0, 0);
    return 0;
}

int tok_encode(const tok_tokenizer *t, const char *text, size_t n, bool add_special, tok_ids *out) {
    return encode(t, text, n, add_special, out);
}

int tok_encode_offsets(const tok_tokenizer *t, const char *text, size_t n, bool add_special,
                       tok_ids *out) {
    if (!out->start) { /* tokens already in the list, without offsets, get [0, 0) */
        size_t cap = out->cap ? out->cap : 64;
        out->ids = eft_realloc(out->ids, cap * sizeof *out->ids);
        out->start = eft_calloc(cap, sizeof *out->start);
        out->end = eft_calloc(cap, sizeof *out->end);
        out->cap = cap;
    }
    return encode(t, text, n, add_special, out);
}

int tok_encode_batch(const tok_tokenizer *t, const char *const *texts, const size_t *lens,
                     size_t count, bool add_special, tok_ids *outs) {
    size_t first_bad = SIZE_MAX;
    char *msg = NULL;
#pragma omp parallel for schedule(dynamic, 4) num_threads(eft_threads())
    for (size_t i = 0; i < count; i++) {
        if (encode(t, texts[i], lens[i], add_special, &outs[i])) {
#pragma omp critical(tok_batch_error)
            if (i < first_bad) {
                first_bad = i;
                eft_free(msg);
                msg = eft_strdup(eft_err_msg());
            }
        }
    }
    if (!msg) return 0;
    eft_fail("text %zu: %s", first_bad, msg);
    eft_free(msg);
    return -1;
}
