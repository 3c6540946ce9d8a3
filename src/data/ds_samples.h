/* ds_samples.h: a set of tokenized samples (token ids and labels), as the formats make them, the
 * prepared cache stores them and the packer reads them.
 *
 * Samples are laid end to end: sample i is tokens [off[i], off[i+1]). Labels are stored the
 * compact way: one bit per token says whether it is trained (label != -100), and a trained
 * token's label is its own id. Only when some trained label differs from its token (a
 * pre-tokenized set with its own labels) does the set carry the full labels array. The same
 * layout is the cache file's, so a mapped cache is used in place (ds_samples_view).
 *
 * Not here: where samples come from (ds_source.h, ds_format.h), filters (ds_filter.h), packing
 * (pack.h).
 */
#ifndef EFT_DATA_DS_SAMPLES_H
#define EFT_DATA_DS_SAMPLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DS_IGNORE (-100) /* the label of a token that is not trained */

typedef struct ds_samples {
    int64_t n;        /* samples */
    int64_t n_tokens; /* off[n] */
    int64_t *off;     /* [n+1] token offsets */
    int32_t *ids;     /* [n_tokens] */
    uint8_t *trained; /* [(n_tokens+7)/8] bit t (LSB first): token t is trained */
    int32_t *labels;  /* [n_tokens] full labels, or NULL: a trained token's label is its id */
    bool owned;       /* false for a view into a mapped cache (never grown or freed) */
    int64_t cap_n, cap_tokens;
} ds_samples;

/* An empty, owned set (zero-initialising is the same). */
void ds_samples_init(ds_samples *s);
void ds_samples_free(ds_samples *s);
/* Empties an owned set, keeping its memory for reuse. */
void ds_samples_clear(ds_samples *s);

/* Appends one sample of n tokens: labels[t] is DS_IGNORE or any id (NULL: every token trained
 * with its own id). */
void ds_samples_add(ds_samples *s, const int32_t *ids, const int32_t *labels, int64_t n);
/* Appends samples [from, to) of src. */
void ds_samples_append(ds_samples *s, const ds_samples *src, int64_t from, int64_t to);
/* A new owned set holding src's samples in the order idx[0..n). */
void ds_samples_gather(ds_samples *dst, const ds_samples *src, const int64_t *idx, int64_t n);
/* Cuts the last sample of an owned set to its first n tokens (n <= its length): the filters
 * append a sample and then truncate it. */
void ds_samples_truncate_last(ds_samples *s, int64_t n);

static inline int64_t ds_len(const ds_samples *s, int64_t i) {
    return s->off[i + 1] - s->off[i];
}
static inline bool ds_is_trained(const ds_samples *s, int64_t t) {
    return (s->trained[t >> 3] >> (t & 7)) & 1;
}
/* The label of token t (global index). */
static inline int32_t ds_label(const ds_samples *s, int64_t t) {
    if (!ds_is_trained(s, t)) return DS_IGNORE;
    return s->labels ? s->labels[t] : s->ids[t];
}
/* Labels of sample i into out[ds_len(s, i)]. */
void ds_sample_labels(const ds_samples *s, int64_t i, int32_t *out);
/* Trained tokens of sample i, and of the whole set. */
int64_t ds_sample_trained(const ds_samples *s, int64_t i);
int64_t ds_samples_trained(const ds_samples *s);

#endif
