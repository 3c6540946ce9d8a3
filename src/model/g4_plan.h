/* g4_plan.h: the Gemma 4 text model laid out layer by layer, its tensors and its size.
 *
 * Three things derived from a checked g4_config, and nothing else:
 *  - the layer plan: per layer the attention kind, head dim, KV heads, k_eq_v, window, RoPE rule,
 *    MLP width, KV sharing (donor) and whether PLE and MoE run (../shared/spec/gemma4.md 2.3, 4);
 *  - the tensor list: every text-model parameter the checkpoint holds, with its Hugging Face name,
 *    shape and group, the nn.Linear ones marked with their module path and [out, in]. It is the
 *    one place names and shapes are written; the weight loader, LoRA and the memory plan read it;
 *  - parameter counts per group, total, and active per token for MoE.
 *
 * It does not read files (g4_config.h does) or size memory (g4_memory.h).
 */
#ifndef EFT_MODEL_G4_PLAN_H
#define EFT_MODEL_G4_PLAN_H

#include "model/g4_config.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct g4_layer {
    int index;
    g4_attn_kind kind;
    int head_dim; /* D: 256 sliding, 512 full in every released size */
    int n_kv;     /* KV heads */
    bool k_eq_v;  /* full layer without v_proj: V is the raw k_proj output */
    int n_rep;    /* query heads per KV head: nH / n_kv */
    int window;   /* W for sliding layers (keys seen, the query included); 0 for full */

    /* RoPE, rotate-half layout. Pairs (i, i + D/2) for i < rope_pairs rotate with
     * inv_freq[i] = 1 / theta^(2i / D) / rope_factor; the other pairs pass through. The default
     * rule rotates all D/2 pairs; the proportional one int(partial_rotary_factor * D // 2). */
    g4_rope_type rope_type;
    double rope_theta;
    int rope_pairs;
    double rope_factor;

    int64_t mlp_width; /* I_l: 2*I on KV-shared layers when use_double_wide_mlp, else I */
    bool kv_shared;    /* no K/V projections: reads the donor's K/V (after norm and RoPE) */
    int kv_donor;      /* the layer whose K/V it reads; -1 when not shared */
    bool stores_kv;    /* some later shared layer reads this layer's K/V */
    bool ple;          /* per-layer-embedding block at the end of the layer */
    bool moe;          /* router + experts beside the dense MLP */
} g4_layer;

typedef struct g4_plan {
    const g4_config *cfg; /* borrowed: must outlive the plan */
    int L;
    int64_t H, V, nH;
    int64_t P;             /* per-layer-embedding dim; 0 without PLE */
    int first_kv_shared;   /* L - num_kv_shared_layers */
    float embed_scale;     /* bf16(sqrt(H)): 39.25 for E2B, 73.5 for 31B */
    float ple_embed_scale; /* bf16(sqrt(P)) (16 for P=256); 0 without PLE */
    int max_head_dim;
    int64_t max_mlp_width;
    g4_layer *layers; /* [L] (owned) */
} g4_plan;

/* Builds the plan from a checked config (g4_config_load guarantees what this relies on). */
void g4_plan_build(g4_plan *p, const g4_config *c);
void g4_plan_free(g4_plan *p);

/* inv_freq of a layer's RoPE: out[D/2], fp32, computed as transformers does (fp32 exponent
 * 2i/D, fp32 power, zeros past rope_pairs). */
void g4_inv_freq(const g4_layer *layer, float *out);

/* ---- Tensors ---------------------------------------------------------------------------- */

typedef enum {
    G4_GROUP_EMBED,       /* token embeddings (and an untied lm_head) */
    G4_GROUP_PLE,         /* per-layer-embedding table, projections and gates */
    G4_GROUP_ATTENTION,   /* q/k/v/o projections */
    G4_GROUP_MLP,         /* dense gate/up/down */
    G4_GROUP_NORMS,       /* every RMSNorm scale (q/k norms, PLE and MoE norms included) */
    G4_GROUP_MOE_ROUTER,  /* router.proj, router.scale, router.per_expert_scale */
    G4_GROUP_MOE_EXPERTS, /* experts.gate_up_proj, experts.down_proj */
    G4_GROUP_BUFFER,      /* layer_scalar: a persistent buffer, not a parameter */
    G4_NGROUPS
} g4_group;

/* Which linear map a weight is: the LoRA target kinds, plus the other nn.Linear modules. */
typedef enum {
    G4_LIN_NONE,
    G4_LIN_Q,
    G4_LIN_K,
    G4_LIN_V,
    G4_LIN_O,
    G4_LIN_GATE,
    G4_LIN_UP,
    G4_LIN_DOWN,
    G4_LIN_EXPERTS_GATE_UP, /* [E, 2*I_e, H]: one [out, in] map per expert, not an nn.Linear */
    G4_LIN_EXPERTS_DOWN,    /* [E, H, I_e] */
    G4_LIN_PLE_GATE,        /* per_layer_input_gate */
    G4_LIN_PLE_PROJ,        /* per_layer_projection */
    G4_LIN_PLE_MODEL_PROJ,  /* per_layer_model_projection */
    G4_LIN_ROUTER,          /* router.proj */
    G4_LIN_LM_HEAD,         /* lm_head, only when embeddings are untied */
    G4_NLIN
} g4_linear;

enum { G4_NAME_MAX = 96 };

typedef struct g4_tensor {
    char name[G4_NAME_MAX];   /* checkpoint name:
                                 "model.language_model.layers.7.self_attn.q_proj.weight" */
    char module[G4_NAME_MAX]; /* linear maps: the module path ("….q_proj"; for experts the
                                 parameter path "….experts.gate_up_proj"); "" otherwise */
    int layer;                /* -1 for model-level tensors */
    g4_group group;
    g4_linear linear;
    int64_t out, in; /* linear maps: [out, in] of one map */
    int64_t count;   /* maps in the tensor: E for experts, 1 for other linear maps */
    int ndim;
    int64_t shape[3];
    int64_t numel;
} g4_tensor;

typedef struct g4_tensors {
    g4_tensor *t; /* (owned) */
    int n;
} g4_tensors;

/* Every text-model tensor of the checkpoint, in a fixed order: model-level tensors, then the
 * layers, then the final norm (and lm_head when untied). KV-shared layers list no k_proj, v_proj
 * or k_norm, and k_eq_v full layers no v_proj, as transformers builds the modules; Google's
 * original uploads carry redundant K/V tensors for shared layers (see g4_tensor_redundant). */
void g4_tensors_build(const g4_plan *p, g4_tensors *out);
void g4_tensors_free(g4_tensors *ts);
const g4_tensor *g4_tensors_find(const g4_tensors *ts, const char *name);
/* True for a name a checkpoint may hold that the model does not use: the k_proj / v_proj /
 * k_norm / v_norm of KV-shared layers (transformers' _keys_to_ignore_on_load_unexpected), and
 * lm_head.weight when it is tied to the embeddings. A loader skips these. */
bool g4_tensor_redundant(const g4_plan *p, const char *name);

const char *g4_group_name(g4_group g);
const char *g4_linear_name(g4_linear k); /* "q_proj", "experts.gate_up_proj", ... */

/* ---- Parameter counts ----------------------------------------------------------------------- */

typedef struct g4_param_counts {
    int64_t group[G4_NGROUPS]; /* elements per group (G4_GROUP_BUFFER: the layer_scalar buffers) */
    int64_t total;             /* every parameter, buffers excluded, a tied LM head once */
    /* Parameters one token runs through: everything but the experts (the embedding table and
     * the PLE table included, as the published "3.8B active" for 26B-A4B counts them), plus
     * top_k/E of the expert weights. Equals total for dense models. */
    int64_t active;
    int64_t linear; /* weights of nn.Linear modules (what NF4 quantises), experts excluded */
} g4_param_counts;

void g4_count_params(const g4_plan *p, const g4_tensors *ts, g4_param_counts *out);

#endif
