/* ds_samples.c: the sample set (see ds_samples.h). */
#include "data/ds_samples.h"

#include "base/err.h"

#include <assert.h>
#include <string.h>

void ds_samples_init(ds_samples *s) {
    memset(s, 0, sizeof *s);
    s->owned = true;
}

void ds_samples_free(ds_samples *s) {
    if (s->owned) {
        eft_free(s->off);
        eft_free(s->ids);
        eft_free(s->trained);
        eft_free(s->labels);
    }
    ds_samples_init(s);
}

void ds_samples_clear(ds_samples *s) {
    assert(s->owned);
    s->n = s->n_tokens = 0;
    if (s->off) s->off[0] = 0;
}

static size_t bit_bytes(int64_t n_tokens) {
    return (size_t)((n_tokens + 7) / 8);
}

/* Room for `more` samples and `tokens` more tokens. */
static void reserve(ds_samples *s, int64_t more, int64_t tokens) {
    assert(s->owned || (s->n == 0 && !s->off));
    s->owned = true;
    if (!s->off || s->n + more + 1 > s->cap_n) {
        int64_t cap = EFT_MAX(s->n + more + 1, s->cap_n * 2);
        cap = EFT_MAX(cap, 64);
        s->off = eft_realloc(s->off, (size_t)cap * sizeof *s->off);
        if (s->cap_n == 0) s->off[0] = 0;
        s->cap_n = cap;
    }
    if (s->n_tokens + tokens > s->cap_tokens) {
        int64_t cap = EFT_MAX(s->n_tokens + tokens, s->cap_tokens * 2);
        cap = EFT_MAX(cap, 1024);
        s->ids = eft_realloc(s->ids, (size_t)cap * sizeof *s->ids);
        size_t old = bit_bytes(s->cap_tokens);
        s->trained = eft_realloc(s->trained, bit_bytes(cap));
        memset(s->trained + old, 0, bit_bytes(cap) - old);
        if (s->labels) s->labels = eft_realloc(s->labels, (size_t)cap * sizeof *s->labels);
        s->cap_tokens = cap;
    }
}

/* From here on the set keeps full labels. */
static void widen_labels(ds_samples *s) {
    s->labels = eft_malloc((size_t)EFT_MAX(s->cap_tokens, 1) * sizeof *s->labels);
    for (int64_t t = 0; t < s->n_tokens; t++)
        s->labels[t] = ds_is_trained(s, t) ? s->ids[t] : DS_IGNORE;
}

static void put_token(ds_samples *s, int64_t t, int32_t id, int32_t label) {
    s->ids[t] = id;
    uint8_t bit = (uint8_t)(1u << (t & 7));
    if (label != DS_IGNORE)
        s->trained[t >> 3] |= bit;
    else
        s->trained[t >> 3] &= (uint8_t)~bit;
    if (s->labels) s->labels[t] = label;
}

void ds_samples_add(ds_samples *s, const int32_t *ids, const int32_t *labels, int64_t n) {
    reserve(s, 1, n);
    if (labels && !s->labels)
        for (int64_t k = 0; k < n; k++)
            if (labels[k] != DS_IGNORE && labels[k] != ids[k]) {
                widen_labels(s);
                break;
            }
    int64_t t0 = s->n_tokens;
    for (int64_t k = 0; k < n; k++) put_token(s, t0 + k, ids[k], labels ? labels[k] : ids[k]);
    s->n_tokens += n;
    s->off[++s->n] = s->n_tokens;
}

void ds_samples_append(ds_samples *s, const ds_samples *src, int64_t from, int64_t to) {
    if (to <= from) return; /* an empty set may have no offsets at all */
    int64_t tokens = src->off[to] - src->off[from];
    reserve(s, to - from, tokens);
    if (src->labels && !s->labels) widen_labels(s);
    for (int64_t i = from; i < to; i++) {
        int64_t a = src->off[i], n = ds_len(src, i), t0 = s->n_tokens;
        for (int64_t k = 0; k < n; k++) put_token(s, t0 + k, src->ids[a + k], ds_label(src, a + k));
        s->n_tokens += n;
        s->off[++s->n] = s->n_tokens;
    }
}

void ds_samples_gather(ds_samples *dst, const ds_samples *src, const int64_t *idx, int64_t n) {
    ds_samples_init(dst);
    int64_t tokens = 0;
    for (int64_t i = 0; i < n; i++) tokens += ds_len(src, idx[i]);
    reserve(dst, n, tokens);
    for (int64_t i = 0; i < n; i++) ds_samples_append(dst, src, idx[i], idx[i] + 1);
}

void ds_samples_truncate_last(ds_samples *s, int64_t n) {
    assert(s->owned && s->n > 0 && n <= ds_len(s, s->n - 1));
    s->n_tokens = s->off[s->n - 1] + n;
    s->off[s->n] = s->n_tokens;
}

void ds_sample_labels(const ds_samples *s, int64_t i, int32_t *out) {
    int64_t a = s->off[i], n = ds_len(s, i);
    for (int64_t k = 0; k < n; k++) out[k] = ds_label(s, a + k);
}

int64_t ds_sample_trained(const ds_samples *s, int64_t i) {
    int64_t c = 0;
    for (int64_t t = s->off[i]; t < s->off[i + 1]; t++) c += ds_is_trained(s, t);
    return c;
}

int64_t ds_samples_trained(const ds_samples *s) {
    int64_t c = 0;
    for (int64_t t = 0; t < s->n_tokens; t++) c += ds_is_trained(s, t);
    return c;
}
