/* lora_merge.h: an adapter baked into its base checkpoint (`eft merge-lora`), as Axolotl's
 * memory-efficient merger writes it (../shared/spec/axolotl-compat.md §1 and §4.3).
 *
 * The base checkpoint is walked shard by shard; each output shard keeps its file name, tensor
 * names, dtypes and order. A tensor with an adapter becomes
 *
 *   W' = dtype(fp32(W) + (B A) * s)          (per expert e of an expert tensor: B_e A_e)
 *
 * which is what Axolotl computes with PEFT's get_delta_weight: the product in fp32, scaled
 * after, added in fp32, rounded once to the tensor's dtype (round-to-nearest-even for bf16).
 * Every other tensor (vision and audio towers included) is copied byte for byte, so the merged
 * folder loads wherever the base did. The index (sharded checkpoints) and every other file of
 * the base folder (config.json, tokenizer, processor and generation configs, chat template) are
 * copied; weight files in other formats (.bin, .gguf) are not.
 *
 * QLoRA. The adapter of a QLoRA run learnt to correct the NF4 weights, so for such a run the
 * caller passes a round trip (`roundtrip`, QLoRA's NF4 quantise-dequantise, peft/nf4.h) and which
 * tensors get it (`wants`): each such adapted tensor becomes
 *
 *   W' = dtype(dtype(roundtrip(fp32(W))) + (B A) * s)
 *
 * rounded back to the checkpoint's dtype before the delta, as Axolotl's _simulate_nf4_roundtrip
 * returns the original dtype. eft's CLI round-trips the adapted tensors that were NF4 in training
 * (g4_nf4_quantized with the run's quantize_moe_experts: every adapted linear map, and the expert
 * tensors when they were quantised) and copies every other tensor byte for byte. Axolotl's
 * memory-efficient merger (0.18) differs: with simulate_nf4 it round-trips every tensor of two or
 * more dimensions, adapted or not (embeddings, vision and audio towers, and experts that training
 * kept in bf16 included), and in its experts-only mode every 3-D "expert" tensor, adapted or not.
 * eft changes only the tensors an adapter is on: the others keep their checkpoint values, also a
 * linear map that was NF4 in training but carries no adapter.
 *
 * Memory: the mapped base plus the merged tensors of one shard.
 *
 * Nothing is left half-written: the folder is built under a temporary name beside `out` and
 * renamed into place; an existing `out` is replaced only once the new one is complete.
 *
 * Not here: reading the adapter (peft_io.h); the NF4 quantiser (peft/nf4.h), and which tensors a
 * run held in NF4 (the caller's `wants`).
 */
#ifndef EFT_PEFT_LORA_MERGE_H
#define EFT_PEFT_LORA_MERGE_H

#include "model/g4_weights.h"
#include "peft/lora.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct lora_merge_opts {
    /* Applied to an adapted tensor's fp32 values w[0..n) before the delta is added, when
     * `wants(t)` says so (QLoRA: the NF4 quantize-dequantize the adapter was trained against).
     * NULL: none. */
    void (*roundtrip)(float *w, int64_t n, void *ctx);
    bool (*wants)(const g4_tensor *t, void *ctx);
    void *ctx;
} lora_merge_opts;

typedef struct lora_merge_stats {
    int shards;     /* files written */
    int merged;     /* tensors that got a delta */
    int roundtrips; /* of which through the round trip first */
    int copied;     /* tensors copied unchanged */
    int files;      /* other files copied */
    double max_rel; /* largest |delta| / |W| (L2, per tensor): a near-zero adapter shows */
} lora_merge_stats;

/* Writes the merged checkpoint of `w` (loaded from base_dir, a checkpoint folder) with the
 * adapter `a` hung on it into the folder `out`. Returns 0, or -1 with an error (and `out` as it
 * was). */
int lora_merge(const g4_weights *w, const lora_adapter *a, const char *base_dir, const char *out,
               const lora_merge_opts *o, lora_merge_stats *st);

#endif
