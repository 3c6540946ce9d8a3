/* g4_config.h: a Gemma 4 checkpoint's config.json, read and checked.
 *
 * Accepts the multimodal wrapper (`model_type` "gemma4", or "gemma4_unified" for the 12B) with
 * its `text_config`, and a text-only config ("gemma4_text", "gemma4_unified_text"). Defaults are
 * those of Hugging Face's Gemma4TextConfig (../shared/spec/gemma4.md section 2.1), or of
 * Gemma4UnifiedTextConfig inside a unified wrapper (window 1024, 262144 positions, "vision"
 * bidirectional blocks, no PLE, no MoE). Both spellings of the full-layer attention overrides are
 * read: `global_head_dim` + `num_global_key_value_heads` as Google published them, or the generic
 * `per_layer_config` map that newer transformers writes when it re-saves a checkpoint.
 *
 * What this file does not do: derive the per-layer plan (g4_plan.h), or parse the vision and
 * audio configs (their presence is only noted). Every malformed or contradictory value is a user
 * error naming the file, the key and what to do.
 */
#ifndef EFT_MODEL_G4_CONFIG_H
#define EFT_MODEL_G4_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum { G4_ATTN_SLIDING = 0, G4_ATTN_FULL = 1 } g4_attn_kind;
enum { G4_NATTN_KINDS = 2 };

typedef enum { G4_ROPE_DEFAULT, G4_ROPE_PROPORTIONAL } g4_rope_type;

/* `use_bidirectional_attention`: null, "vision" (image blocks of sliding layers) or "all". */
typedef enum { G4_BIDI_NONE, G4_BIDI_VISION, G4_BIDI_ALL } g4_bidi;

/* One entry of `rope_parameters` (one per layer kind). */
typedef struct g4_rope {
    g4_rope_type type;
    double theta;                 /* rope_theta */
    double partial_rotary_factor; /* proportional only; 1.0 when absent */
    double factor;                /* proportional only: inv_freq is divided by it; 1.0 default */
} g4_rope;

enum { G4_MAX_EOS = 8 };

typedef struct g4_config {
    /* Where the text model sits. */
    char model_type[32];        /* of config.json's top level */
    bool wrapper;               /* multimodal wrapper: weights under "model.language_model." */
    bool unified;               /* gemma4_unified (12B "encoder-free") defaults */
    const char *weight_prefix;  /* "model.language_model." or "model." (static string) */
    bool has_vision, has_audio; /* the wrapper carries vision_config / audio_config */

    /* Sizes. */
    int64_t vocab_size;        /* V */
    int64_t hidden_size;       /* H */
    int64_t intermediate_size; /* I: dense MLP width */
    int num_hidden_layers;     /* L */
    int num_attention_heads;   /* nH */
    int num_key_value_heads;   /* nKV of sliding layers (and of full ones unless overridden) */
    int head_dim;              /* D of sliding layers */
    g4_attn_kind *layer_types; /* [L], the last one forced to full (owned) */
    int *layer_head_dim;       /* [L] D per layer, both override spellings resolved (owned) */
    int *layer_num_kv;         /* [L] nKV per layer (owned) */
    bool attention_k_eq_v;     /* full layers: no v_proj, V from the raw k_proj output */
    int64_t sliding_window;    /* W, in keys, including the query itself */
    g4_rope rope[G4_NATTN_KINDS];
    g4_bidi bidirectional;

    /* Per-layer embeddings (E2B/E4B); hidden_size_per_layer_input 0 means none. */
    int64_t vocab_size_per_layer_input;
    int64_t hidden_size_per_layer_input; /* P */

    int num_kv_shared_layers; /* the last N layers reuse K/V of earlier ones */
    bool use_double_wide_mlp; /* KV-shared layers get an MLP of width 2*I */

    /* MoE (26B-A4B). */
    bool enable_moe_block;
    int num_experts;               /* E */
    int top_k_experts;             /* K */
    int64_t moe_intermediate_size; /* I_e */

    /* Head, norms, tokens. */
    double final_logit_softcapping; /* 0 when null: no softcap */
    double rms_norm_eps;
    double initializer_range;
    bool tie_word_embeddings;
    int64_t max_position_embeddings;
    int64_t pad_token_id, bos_token_id; /* -1 when null */
    int64_t eos_token_ids[G4_MAX_EOS];  /* the top-level wrapper's list wins over text_config's */
    int n_eos;
} g4_config;

/* Reads <path> (a config.json). On failure nothing is left to free. */
int g4_config_load(g4_config *c, const char *path);
/* Reads a parsed config.json; `file` names it in errors. */
int g4_config_parse(g4_config *c, const cJSON *root, const char *file);
void g4_config_free(g4_config *c);

const char *g4_attn_kind_name(g4_attn_kind k); /* "sliding_attention" / "full_attention" */

#endif
