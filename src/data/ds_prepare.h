/* ds_prepare.h: a config's datasets, tokenized, labelled, filtered, merged, split and cached.
 *
 * The order is Axolotl's: each `datasets:` entry is read (ds_source.h), formatted (ds_format.h)
 * and filtered (ds_filter.h); the entries are concatenated (each shuffled first with
 * shuffle_before_merging_datasets) and shuffled with `seed` (shuffle_merged_datasets, default
 * true; not for a single dataset under curriculum_sampling); then val_set_size holds out the
 * last ceil(val_set_size x n) samples as the eval set, as datasets' train_test_split(shuffle=
 * False) does. `test_datasets`, when given, go through the same steps (with eval_sequence_len)
 * and are the eval set. The shuffles use eft's RNG: the same seed gives the same order on every
 * machine, but not Axolotl's order (numpy's), which no C program reproduces.
 *
 * The result is cached under dataset_prepared_path (default ./last_run_prepared) in a file named
 * by a hash of everything that changes tokens or labels (ds_cache.h); a later run with the same
 * inputs maps that file instead of tokenizing again.
 */
#ifndef EFT_DATA_DS_PREPARE_H
#define EFT_DATA_DS_PREPARE_H

#include "base/fs.h"
#include "data/ds_format.h"
#include "data/ds_samples.h"
#include "io/config.h"
#include "text/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>

/* What happened to one dataset entry's rows. */
typedef struct ds_stats {
    char *name;                  /* "datasets[0] (data.jsonl)" (owned) */
    bool test;                   /* a test_datasets entry */
    int64_t rows;                /* rows the split and shards selected */
    int64_t max_len;             /* the length limit applied (sequence_len or eval's) */
    int64_t skipped[DS_N_SKIPS]; /* rows that gave no sample, by reason */
    int64_t made;                /* samples the format gave */
    int64_t too_short, too_long, truncated, untrained; /* filters (truncated ones are kept) */
    int64_t samples, tokens, trained;                  /* what was kept */
} ds_stats;

typedef struct ds_prepared {
    ds_samples train, eval; /* eval.n == 0 when there is no eval set */
    ds_stats *stats;        /* [n_stats]: datasets entries, then test_datasets entries */
    int n_stats;
    char key[33];           /* the cache key (hex) */
    char *cache_file;       /* where the prepared data lives (owned) */
    bool from_cache;        /* mapped from an earlier run, nothing tokenized */
    int64_t rows_tokenized; /* rows formatted by this call (0 when from_cache) */
    eft_mapped map;         /* the cache file, when train/eval view it */
} ds_prepared;

/* Prepares (or reuses) the data of a loaded, validated config whose paths are resolved, with
 * tokenizer t. Errors name the dataset, the file and line, or the config key at fault. */
int ds_prepare(const eft_config *c, const tok_tokenizer *t, ds_prepared *out);
void ds_prepared_free(ds_prepared *p);

/* One info line per dataset entry ("datasets[0] (data.jsonl): 1000 rows -> 998 samples, ...;
 * dropped 2 longer than 512"), then the totals of the train and eval sets and the cache. */
void ds_report(const ds_prepared *p);

/* ---- the steps, for ds_prepare.c and the tests ---- */

/* Reads, formats and filters one opened entry into out (owned). */
int ds_build_entry(const eft_config *c, const tok_tokenizer *t, ds_source *src, bool test,
                   ds_samples *out, ds_stats *st);

#endif
