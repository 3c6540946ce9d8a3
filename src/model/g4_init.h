/* g4_init.h: new random Gemma 4 checkpoints: the tiny presets, and transformers-like init.
 *
 * Each preset mirrors the structure of a released size at a few hundred kilobytes, so that
 * tests and the demo exercise every path of the real model: tiny-e2b (per-layer embeddings,
 * KV sharing, double-wide MLP on the shared layers, the 4:1 pattern), tiny-e4b (PLE, KV
 * sharing, 5:1), tiny-12b (the unified wrapper, k_eq_v with one global KV head), tiny-31b
 * (k_eq_v, fewer global KV heads), tiny-26b-a4b (MoE). Global head dims are twice the sliding
 * ones, sliding windows are shorter than the test sequences, H and P are perfect squares (so
 * sqrt(H) is exact in bf16 and in fp32, as transformers computes it at either precision), and
 * layer_scalar differs from 1.
 *
 * The values are drawn like transformers' _init_weights: N(0, initializer_range) for linear maps,
 * embeddings (the pad row zeroed) and experts; ones for norm scales and the router scales; the
 * layer_scalar buffers from U(0.5, 1.5) instead of transformers' ones. Files are written in the
 * Hugging Face layout (config.json + model.safetensors, bf16), which transformers loads.
 */
#ifndef EFT_MODEL_G4_INIT_H
#define EFT_MODEL_G4_INIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct g4_preset {
    const char *name;    /* "tiny-31b" */
    const char *mirrors; /* "31B" */
    bool unified;        /* gemma4_unified wrapper (12B) */
    int vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, global_head_dim;
    int global_kv_heads; /* 0: same as kv_heads (no override) */
    bool k_eq_v;
    int full_every; /* every n-th layer is full attention (the last is always full) */
    int window, ple_dim, kv_shared;
    bool double_wide;
    int experts, top_k, expert_intermediate; /* experts 0: dense */
} g4_preset;

/* The presets, NULL-name terminated. */
extern const g4_preset g4_presets[];
const g4_preset *g4_preset_find(const char *name);

/* config.json text of a preset (owned by the caller). text_only: a gemma4_text config for
 * Gemma4ForCausalLM (weights under "model."), else the multimodal wrapper without towers. */
char *g4_preset_config_json(const g4_preset *p, bool text_only, int vocab_override);

/* Writes out_dir/config.json and out_dir/model.safetensors (bf16) for the preset, drawn from
 * `seed`. The folder is created. vocab_override > 0 replaces the preset's vocabulary size (to
 * match a tokenizer). */
int g4_init_checkpoint(const g4_preset *p, const char *out_dir, uint64_t seed, bool text_only,
                       int vocab_override);

#endif
