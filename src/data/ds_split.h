/* ds_split.h: Hugging Face split specs: "train", "train[:10%]", "train[10:20]", "train[-5%:]",
 * "train[:100]+test[:100]", "train[:33%](pct1_dropremainder)".
 *
 * The rules are those of datasets' ReadInstruction: a percent boundary becomes
 * round(pct * n / 100) with Python's round (halves to even), or pct * trunc(n / 100) with the
 * pct1_dropremainder rounding; negative boundaries count from the end; boundaries are clamped to
 * [0, n]. A slice with a percent on either side is a percent slice on both sides. Parts joined by
 * "+" are concatenated in order.
 */
#ifndef EFT_DATA_DS_SPLIT_H
#define EFT_DATA_DS_SPLIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ds_split_part {
    char name[64]; /* the split: train, test, validation, ... */
    bool has_from, has_to, pct, pct1;
    int64_t from, to;
} ds_split_part;

typedef struct ds_split_spec {
    int n;
    ds_split_part *parts; /* [n] (owned) */
} ds_split_spec;

/* Parses spec. On a malformed spec records an error that quotes it and says what is allowed
 * (the caller adds where it was written). */
int ds_split_parse(const char *spec, ds_split_spec *out);
void ds_split_free(ds_split_spec *s);
/* The rows [*from, *to) that part selects out of n (from <= to). Fails only for
 * pct1_dropremainder on fewer than 100 rows, as datasets does. */
int ds_split_range(const ds_split_part *p, int64_t n, int64_t *from, int64_t *to);

#endif
