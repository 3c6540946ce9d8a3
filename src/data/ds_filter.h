/* ds_filter.h: the length and label filters Axolotl applies to tokenized samples, with counts.
 *
 * In Axolotl's order: samples shorter than min_sample_len (0 reads as 2, as Axolotl reads it)
 * are dropped; samples longer than the split's sequence length are dropped, cut to it, or
 * refused, per excess_length_strategy (drop | truncate | raise); then samples with no trained
 * token are dropped (Axolotl does this with sample packing; eft always does: a micro-batch with
 * no trained token has no loss to average).
 */
#ifndef EFT_DATA_DS_FILTER_H
#define EFT_DATA_DS_FILTER_H

#include "data/ds_samples.h"

#include <stdint.h>

typedef enum ds_excess { DS_EXCESS_DROP, DS_EXCESS_TRUNCATE, DS_EXCESS_RAISE } ds_excess;

typedef struct ds_filter_counts {
    int64_t too_short, too_long, truncated, untrained;
} ds_filter_counts;

/* Builds out (owned) from the samples of `in` that pass, in order, and adds to *counts. With
 * DS_EXCESS_RAISE a sample longer than max_len stops the filter: returns -1 with *bad set to
 * its index in `in` and nothing recorded (the caller knows where it came from). keep[k], when
 * not NULL, receives the index in `in` of out's sample k. */
int ds_filter(const ds_samples *in, int64_t max_len, int64_t min_len, ds_excess excess,
              ds_samples *out, ds_filter_counts *counts, int64_t *keep, int64_t *bad);

#endif
