/* pack.h: micro-batches for the trainer: sample packing, the epoch's order, the buffers the
 * model reads, and the step count.
 *
 * Packed (sample_packing): samples are packed into bins of micro_batch_size x sequence_len
 * tokens, one bin per micro-batch, laid out as one row (Axolotl's layout with varlen attention,
 * compat section 6); with multipack_real_batches the bins hold sequence_len tokens and a
 * micro-batch is micro_batch_size bins, one row each, the last incomplete micro-batch dropped.
 * A bin holds at most sample_packing_bin_size samples.
 *
 * How bins are made each epoch: the samples are put in a random order drawn from (seed, epoch)
 * (dataset order under curriculum_sampling), then packed first-fit decreasing: longest first,
 * equal lengths in that order, each into the first bin with room. Which samples share a bin
 * thus changes between epochs wherever lengths repeat, while the number of bins depends only on
 * the lengths and is the same every epoch. The bins are then shuffled by (seed, epoch).
 * sample_packing_sequentially packs next-fit in the epoch's order instead (Axolotl's sequential
 * packing); its bin count varies by epoch, and every epoch yields the smallest count seen over
 * the configured epochs, as Axolotl's sampler yields its estimated length.
 *
 * Documents in a packed row keep their own position ids (0, 1, ... restarting in each), which is
 * how the model finds them (g4_model.h), and the first label of every packed document is -100:
 * with labels shifted within the row (g4_batch_targets), the last token of a document would
 * otherwise be trained to predict the first token of the next one. (Axolotl leaves that label;
 * with chat data it is a masked <bos> anyway. It also means a packed micro-batch's unshifted
 * label count equals its shifted one.)
 *
 * Unpacked: micro_batch_size samples per micro-batch, each its own row, rows laid end to end
 * (no padding), in a random order per epoch (dataset order under curriculum_sampling), the last
 * micro-batch possibly short.
 *
 * The eval loader reads the eval set in order: packed (first-fit decreasing, bins unshuffled)
 * when eval_sample_packing (default: sample_packing), else eval_batch_size samples per
 * micro-batch, dropping the last short one when training packs and eval does not (Axolotl's
 * dataloader_drop_last).
 */
#ifndef EFT_DATA_PACK_H
#define EFT_DATA_PACK_H

#include "data/ds_samples.h"
#include "io/config.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct pack_config {
    bool packed;       /* bins, else micro_batch_size samples a micro-batch */
    bool real_batches; /* multipack_real_batches */
    bool sequential;   /* next-fit in order instead of first-fit decreasing */
    bool keep_order;   /* no shuffles (curriculum_sampling, eval) */
    bool drop_last;    /* unpacked: drop a short last micro-batch */
    int64_t sequence_len, micro_batch_size, bin_size;
    uint64_t seed;
    int epochs; /* epochs whose bin counts fix the micro-batch count (sequential packing) */
} pack_config;

void pack_config_train(pack_config *pc, const eft_config *c);
void pack_config_eval(pack_config *pc, const eft_config *c);

typedef struct pack_loader {
    const ds_samples *s;
    pack_config cfg;
    int64_t capacity;   /* tokens per bin */
    int64_t n_mb;       /* micro-batches per epoch, the same every epoch */
    int64_t max_tokens; /* most tokens in one micro-batch: size the caller's buffers with it */
    int64_t max_rows;   /* most rows in one micro-batch */
    double efficiency;  /* epoch 0's: tokens / (bins x capacity); 1 unpacked */
    int64_t epoch_bins; /* bins of the current epoch (before any are left out) */
    /* the current epoch (pack_epoch), in memory sized once by pack_loader_init */
    int epoch;
    int64_t *order;     /* [n] samples, grouped by bin (or in micro-batch order unpacked) */
    int64_t *bin_start; /* [n+1] start of each bin in order */
    int64_t *bin_perm;  /* [n] the epoch's order of bins */
    int64_t *scratch;   /* [3n + tree + counts] */
    int64_t n_scratch;
} pack_loader;

/* Sizes everything for the samples s (which must outlive the loader) and packs epoch 0.
 * sample_packing_group_size has no effect: eft packs a whole epoch at once in O(n log n).
 * Errors: a sample longer than a bin (the filters keep this from happening). */
int pack_loader_init(pack_loader *L, const ds_samples *s, const pack_config *pc);
void pack_loader_free(pack_loader *L);
/* Packs (or orders) epoch e. Allocates nothing. */
void pack_epoch(pack_loader *L, int epoch);

/* One micro-batch in the caller's buffers, sized once from the loader: ids, labels and pos hold
 * max_tokens entries, row_start max_rows + 1. Labels are unshifted (g4_batch_targets shifts
 * them within each row). */
typedef struct pack_batch {
    int32_t *ids;       /* [n] */
    int32_t *labels;    /* [n] -100 = not trained */
    int32_t *pos;       /* [n] position ids, restarting at 0 in every document */
    int32_t *row_start; /* [rows+1] */
    int n, rows;
    int docs;        /* samples in the micro-batch */
    int64_t trained; /* labels != -100 */
} pack_batch;

/* Fills micro-batch i (0 <= i < n_mb) of the current epoch. Allocates nothing. */
void pack_fill(const pack_loader *L, int64_t i, pack_batch *b);

/* The run's length, as training-math section 6.4 computes it. */
typedef struct pack_steps {
    int64_t micro_batches;     /* M: per epoch */
    int64_t accumulation;      /* G */
    int64_t updates_per_epoch; /* ceil(M / G), the last update of an epoch possibly short */
    int64_t estimate;          /* Axolotl's estimate of the number of updates */
    int64_t total;             /* T, the updates the trainer runs: max_steps when set */
    int64_t warmup_base;       /* what warmup_ratio multiplies: min(estimate, max_steps) */
} pack_steps;

/* Unpacked: estimate = ceil(N x E / (B x G)). Packed: estimate = floor(max(1, M div G) x E),
 * Axolotl's formula, or with sample_packing_eff_est set, (floor(0.99 x tokens / eff /
 * sequence_len div (B x G)) - 1) x E, truncated. M is eft's own bin count: Axolotl takes the
 * smallest bin count of four first-fit packings in random order and cuts every epoch to it;
 * eft's first-fit-decreasing count is the same every epoch, so no bin is ever left out, and it
 * is usually smaller than Axolotl's (fuller bins), so a packed run takes fewer, fuller steps
 * than Axolotl's on the same data. The trainer runs `total` updates of G micro-batches, the last
 * update of an epoch taking what is left (training-math section 1). */
void pack_steps_compute(const pack_loader *L, const eft_config *c, pack_steps *out);

#endif
