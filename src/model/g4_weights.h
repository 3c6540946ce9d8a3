/* g4_weights.h: the parameters of a Gemma 4 text model in memory, by role.
 *
 * One g4_param per tensor of the plan's tensor list (g4_plan.h), in the same order, each with
 * the view the kernels read (ops_weight: fp32, or bf16 straight from the mapped checkpoint) and,
 * for trained parameters, an fp32 master copy and its gradient. Roles (input_layernorm, q_proj,
 * ...) are pointers into that array, so the forward reads `L->q` and a loop over all parameters
 * (saving, the optimizer, gradient norms) walks `params`.
 *
 * Storage rules: norm scales and layer_scalar are always widened to fp32 (they are small and
 * multiply activations); big matrices stay bf16 in the mapping when frozen and bf16 in the file,
 * and become owned fp32 when trained (full fine-tuning) or stored as F16/F32. A loader may
 * instead convert frozen tensors as they are read into storage of its own (NF4 for QLoRA, see
 * g4_weights_load_convert). A low-rank adapter (LoRA) may hang off any linear parameter: the
 * model computes y = x Wᵀ + s (x Aᵀ) Bᵀ.
 *
 * Not here: which modules get adapters or how adapters are saved (src/peft), initial values for
 * new checkpoints (g4_init.h).
 */
#ifndef EFT_MODEL_G4_WEIGHTS_H
#define EFT_MODEL_G4_WEIGHTS_H

#include "io/safetensors.h"
#include "model/g4_plan.h"
#include "ops/ops.h"

#include <stdbool.h>
#include <stdint.h>

/* A low-rank delta on one linear map [out, in]: y += scale * (drop(x) Aᵀ) Bᵀ (PEFT's LoRA). */
typedef struct g4_lora {
    int r;
    float scale;   /* lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA */
    float dropout; /* probability on the adapter's input; 0 = none */
    float *A;      /* [r, in] fp32 (an expert tensor's: [r*E, in], see peft/lora.h) */
    float *B;      /* [out, r] fp32 (an expert tensor's: [out, r*E]) */
    float *dA;     /* like A: gradient (+=), NULL when not trained */
    float *dB;     /* like B */
} g4_lora;

typedef struct g4_param {
    const g4_tensor *t; /* name, shape, group (the plan's tensor list) */
    ops_weight w;       /* what the kernels read, [numel] */
    float *f32;         /* owned fp32 values, or NULL when w views the mapped file */
    void *owned;        /* other storage w points into (an NF4 tensor), one eft_malloc block */
    float *grad;        /* [numel] fp32 gradient (+=) when trained, else NULL */
    g4_lora *lora;      /* adapter on this linear map, or NULL */
} g4_param;

/* One decoder layer. NULL where the layer has no such tensor (KV-shared layers have no k/v
 * projections or k_norm; k_eq_v full layers no v_proj; PLE only on E2B/E4B). */
typedef struct g4_layer_params {
    g4_param *input_norm, *post_attn_norm, *pre_ffw_norm, *post_ffw_norm;
    g4_param *q, *k, *v, *o, *q_norm, *k_norm;
    g4_param *gate, *up, *down;
    g4_param *ple_gate, *ple_proj, *post_ple_norm;
    /* MoE (26B-A4B): router, experts and their three norms. */
    g4_param *router_proj, *router_scale, *per_expert_scale;
    g4_param *experts_gate_up, *experts_down; /* [E, 2 I_e, H], [E, H, I_e] */
    g4_param *pre_ffw_norm_2, *post_ffw_norm_1, *post_ffw_norm_2;
    g4_param *layer_scalar; /* [1] buffer */
} g4_layer_params;

typedef struct g4_weights {
    const g4_plan *plan;
    const g4_tensors *ts;
    g4_param *params;               /* [ts->n], params[i].t == &ts->t[i] (owned) */
    g4_param *embed;                /* [V, H], also the LM head when tied */
    g4_param *final_norm, *lm_head; /* lm_head NULL when tied */
    g4_param *ple_table, *ple_model_proj, *ple_proj_norm; /* NULL without PLE */
    g4_layer_params *layers;                              /* [L] (owned) */
    st_archive *archive; /* the mapped checkpoint the bf16 views point into (owned) */
} g4_weights;

/* Maps the checkpoint at `path` (a folder, a .safetensors file or an index) and binds every
 * tensor of the plan by name: missing tensors, wrong shapes and unsupported dtypes are user
 * errors naming the tensor and the file. Tensors the model does not use (vision and audio
 * towers, redundant K/V of shared layers, a tied lm_head) are never read. When `train_all`,
 * every parameter gets an fp32 master and a zeroed gradient (full fine-tuning). */
int g4_weights_load(g4_weights *w, const g4_plan *p, const g4_tensors *ts, const char *path,
                    bool train_all);

/* A conversion of frozen tensors at load. `convert` sees each frozen tensor once its shape and
 * dtype are checked, with the checkpoint's bytes: it returns 1 after binding the parameter itself
 * (par->w, with the storage in par->owned), 0 to leave the tensor to the usual binding, -1 on
 * failure with a user error. Tensors are converted one at a time, in the plan's order, so a
 * conversion needs only one tensor's scratch. */
typedef struct g4_load_convert {
    int (*convert)(g4_param *par, const st_archive *a, const st_tensor *st, void *ctx);
    void *ctx;
} g4_load_convert;

/* g4_weights_load with a conversion (NULL: none). */
int g4_weights_load_convert(g4_weights *w, const g4_plan *p, const g4_tensors *ts, const char *path,
                            bool train_all, const g4_load_convert *cv);
/* Owned fp32 parameters with the given values source: `init(param, out, ctx)` fills out[numel].
 * For new checkpoints (eft init-model) and tests. */
void g4_weights_alloc(g4_weights *w, const g4_plan *p, const g4_tensors *ts, bool train_all,
                      void (*init)(const g4_param *p, float *out, void *ctx), void *ctx);
void g4_weights_free(g4_weights *w);

/* The value of layer l's layer_scalar buffer. */
float g4_layer_scalar(const g4_weights *w, int l);
/* Sets every parameter gradient (and adapter gradient) to zero. */
void g4_weights_zero_grad(g4_weights *w);

#endif
