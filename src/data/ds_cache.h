/* ds_cache.h: the prepared-data cache: its key, and the file that holds the samples.
 *
 * The key is a 128-bit hash (XXH3) of everything that changes tokens, labels or which samples
 * are kept and in what order: eft's data format version, the contents of every data file read
 * (or path, size and mtime for files over 1 GiB), the tokenizer's files (tokenizer.json,
 * tokenizer_config.json, chat_template.jinja), every option of every dataset entry, and the
 * top-level keys chat_template, chat_template_kwargs, eot_tokens, special_tokens,
 * train_on_inputs, sequence_len, eval_sequence_len, excess_length_strategy, min_sample_len,
 * val_set_size, seed, the shuffle keys and dataset_exact_deduplication. Packing is not in it:
 * samples are cached unpacked, and packed per epoch when training.
 *
 * The file, <dataset_prepared_path>/<key>/prepared.eft, written atomically:
 *     header (128 bytes): "EFTDATA\1", version, key, payload size, payload hash, counts
 *     payload, every array 64-byte aligned from the file's start:
 *         per set (train, eval): off int64[n+1], ids int32[T], trained bits uint8[(T+7)/8],
 *                                labels int32[T] (only when some label is not -100 or its id)
 *         the per-dataset statistics as JSON
 * The arrays are the in-memory layout of ds_samples, so a loaded file is used where it is
 * mapped. A file whose size, header or payload hash is wrong is reported and rebuilt.
 */
#ifndef EFT_DATA_DS_CACHE_H
#define EFT_DATA_DS_CACHE_H

#include "data/ds_prepare.h"
#include "data/ds_source.h"

/* Bump when eft's formats change the tokens or labels they make for the same input. */
#define DS_DATA_VERSION 1

/* The key of a config whose entries are opened as srcs[0..n) (datasets, then test_datasets). */
int ds_cache_key(const eft_config *c, ds_source *const *srcs, int n, char hex[33]);

/* Maps `path` into p (train, eval, stats, from_cache) when it is a complete file for `key`:
 * 1 when loaded, 0 when absent or unusable (a broken file is reported with eft_warn). */
int ds_cache_load(const char *path, const char *key, ds_prepared *p);
/* Writes p's sets and statistics to path (folders created), atomically. */
int ds_cache_save(const char *path, const char *key, const ds_prepared *p);

#endif
