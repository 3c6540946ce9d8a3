/* ds_filter.c: length and label filters (see ds_filter.h). */
#include "data/ds_filter.h"

#include "base/err.h"

int ds_filter(const ds_samples *in, int64_t max_len, int64_t min_len, ds_excess excess,
              ds_samples *out, ds_filter_counts *counts, int64_t *keep, int64_t *bad) {
    ds_samples_init(out);
    if (min_len <= 0) min_len = 2; /* Axolotl: `min_sequence_len or 2` */
    for (int64_t i = 0; i < in->n; i++) {
        int64_t len = ds_len(in, i);
        if (len > max_len && excess == DS_EXCESS_RAISE) {
            ds_samples_free(out);
            *bad = i;
            return -1;
        }
        if (len < min_len) { /* Axolotl filters short samples before truncating long ones */
            counts->too_short++;
            continue;
        }
        if (len > max_len && excess == DS_EXCESS_DROP) {
            counts->too_long++;
            continue;
        }
        int64_t n = EFT_MIN(len, max_len), trained = 0;
        for (int64_t t = in->off[i]; t < in->off[i] + n; t++) trained += ds_is_trained(in, t);
        if (trained == 0) {
            counts->untrained++;
            continue;
        }
        if (n < len) counts->truncated++;
        if (keep) keep[out->n] = i;
        ds_samples_append(out, in, i, i + 1);
        if (n < len) ds_samples_truncate_last(out, n);
    }
    return 0;
}
