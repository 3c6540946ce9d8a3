/* g4_internal.h: the model's buffers, shared by g4_acts.c, g4_layer.c and g4_forward.c only.
 *
 * Every buffer is fp32 (int32 for indices) and comes from one of the model's two arenas:
 *   acts     what the forward keeps for the backward (g4_memory.h lists the same tensors);
 *   scratch  one layer's temporaries and the backward's activation gradients, reset per layer,
 *            plus the kernels' scratch and the gradient accumulators that live across layers.
 * The carving functions are run once on measuring arenas to size them (g4_model_init), and
 * again on the real ones, so sizes and uses cannot drift apart.
 */
#ifndef EFT_MODEL_G4_INTERNAL_H
#define EFT_MODEL_G4_INTERNAL_H

#include "model/g4_model.h"

/* The linear maps of one layer that may carry an adapter, for the saved adapter inputs. */
enum {
    G4L_Q,
    G4L_K,
    G4L_V,
    G4L_O,
    G4L_GATE,
    G4L_UP,
    G4L_DOWN,
    G4L_PLE_GATE,
    G4L_PLE_PROJ,
    G4L_ROUTER, /* router.proj: an nn.Linear, so all-linear LoRA wraps it (PEFT, Axolotl) */
    G4L_EXPERTS_GATE_UP, /* expert tensors: x Aᵀ per (token, expert) slot, [N*K, r] in slot order */
    G4L_EXPERTS_DOWN,
    G4L_N
};

/* One layer's forward state, N tokens. Without recompute every layer has all of it; with
 * recompute each layer keeps h_in (and a donor its k and v) and the rest is the shared `replay`
 * set, re-made just before the layer's backward. */
struct g4_layer_acts {
    float *h_in;            /* [N, H] the layer's input */
    float *rstd_attn;       /* [N] */
    float *x_attn;          /* [N, H] input_layernorm(h_in) */
    float *q_raw;           /* [N, nH*D] q_proj output */
    float *rstd_q;          /* [N*nH] */
    float *q;               /* [N, nH, D] after q_norm and RoPE */
    float *k_raw, *v_raw;   /* [N, nKV*D] projections (v_raw NULL with k_eq_v; both NULL shared) */
    float *rstd_k, *rstd_v; /* [N*nKV] */
    float *k, *v;           /* [N, nKV, D] after norms and RoPE; a shared layer points at its
                               donor's */
    float *attn;            /* [N, nH*D] attention output: o_proj's input */
    float *lse;             /* [nH, N] */
    float *attn_proj;       /* [N, H] o_proj output */
    float *rstd_post_attn;  /* [N] */
    float *h_mid;           /* [N, H] h_in + post_attention_layernorm(attn_proj) */
    float *rstd_pre_ffw;    /* [N] */
    float *x_mlp;           /* [N, H] pre_feedforward_layernorm(h_mid) */
    float *gate, *up;       /* [N, I] */
    float *mlp_out;         /* [N, H] down_proj output */
    float *rstd_post_ffw;   /* [N] */
    float *h_ple;           /* [N, H] h_mid + post_feedforward_layernorm(mlp_out) (PLE only) */
    float *ple_gate;        /* [N, P] per_layer_input_gate output */
    float *ple_gated;       /* [N, P] gelu(ple_gate) * ple[:, l] */
    float *ple_proj;        /* [N, H] per_layer_projection output */
    float *rstd_ple;        /* [N] */
    float *xa[G4L_N];       /* [N, r] adapter inputs x Aᵀ of the layer's adapted maps ([N*K, r]
                               for the experts) */
    /* MoE (26B-A4B), beside the dense MLP (g4_moe.c). */
    float *rstd_post_ffw_1; /* [N] post_feedforward_layernorm_1 of mlp_out */
    float *rstd_router;     /* [N] */
    float *router_x;        /* [N, H] norm(h_mid) * router.scale * H^-1/2: router.proj's input */
    int32_t *topk_idx;      /* [N, K] experts of each token, by descending probability */
    float *topk_w;          /* [N, K] their renormalised probabilities (before per_expert_scale) */
    int32_t *slot_order;    /* [N*K] slots t*K + k grouped by expert, each group in token order */
    int32_t *expert_start;  /* [E+1] where each expert's group starts in slot_order */
    float *rstd_pre_ffw_2;  /* [N] */
    float *x_moe;           /* [N, H] pre_feedforward_layernorm_2(h_mid): the experts' input */
    float *expert_gu;       /* [N*K, 2 I_e] gate|up of each slot, in slot_order */
    float *moe_out; /* [N, H] sum of w * expert output: post_feedforward_layernorm_2's input */
    float *rstd_post_ffw_2; /* [N] */
    float *ffw_sum;         /* [N, H] m1 + m2: post_feedforward_layernorm's input */
};

typedef struct g4_state {
    int N;                      /* tokens of the batch in flight */
    g4_layer_acts *layers;      /* [L] */
    g4_layer_acts replay;       /* recompute: one layer's full set */
    float *replay_k, *replay_v; /* the replay set's own K/V (a layer may borrow others') */
    int32_t *doc_start;         /* [max_tokens] */
    float *cos[G4_NATTN_KINDS], *sin[G4_NATTN_KINDS]; /* [N, D/2] per attention kind */
    float *inv_freq[G4_NATTN_KINDS];                  /* [D/2] */
    /* PLE (E2B/E4B). */
    float *ple;          /* [N, L*P] per-layer inputs */
    float *ple_ctx;      /* [N, L*P] per_layer_model_projection(h0) * H^-1/2 */
    float *rstd_ple_ctx; /* [N*L] */
    float *ple_xa;       /* [N, r] adapter input of per_layer_model_projection */
    /* Head. */
    float *h_final;    /* [N, H] the last layer's output */
    float *rstd_final; /* [N] */
    float *x_final;    /* [N, H] final norm output: the LM head's input */
    float *token_lse;  /* [N] */
    /* Backward accumulators that live across layers (in the scratch arena, below the mark that
     * each layer resets to). */
    float *dh;                     /* [N, H] gradient of the residual stream */
    float *dkv[G4_NATTN_KINDS][2]; /* donors' [N, nKV, D] dk and dv, by attention kind */
    float *d_ple;                  /* [N, L*P] */
    float *drop_x, *drop_dx; /* [max_tokens, widest adapted input]: LoRA dropout's masked input
                                and input gradient (NULL without dropout) */
    void *kernel;            /* ops scratch, kernel_bytes */
    size_t kernel_bytes;
    size_t layer_mark; /* scratch mark where per-layer temporaries start */
} g4_state;

/* Carving (g4_acts.c). */
void g4_carve_state(g4_model *m, g4_state *s, int N);
void g4_carve_layer(g4_model *m, eft_arena *a, g4_layer_acts *x, int l, int N, bool full);

/* Temporaries of one layer's forward (taken from scratch after layer_mark). */
typedef struct g4_fwd_tmp {
    float *hh;     /* [N, I] gelu(gate) * up */
    float *tmp;    /* [N, H] a normed branch before the residual add */
    float *ple_in; /* [N, P] this layer's slice of ple, contiguous */
    float *lora;   /* [N, r] scaled adapter input */
    /* MoE */
    float *logits; /* [N, E] router scores, then probabilities */
    float *xg, *y; /* [N, H] one expert's gathered inputs and outputs */
    float *act;    /* [N, I_e] gelu(gate) * up of one expert */
    float *m2;     /* [N, H] post_feedforward_layernorm_2(moe_out) */
    float *lora_b; /* [max(2 I_e, H), r] one expert's lora_B, gathered */
} g4_fwd_tmp;
void g4_carve_fwd_tmp(g4_model *m, g4_fwd_tmp *t, int l, int N);

/* Temporaries of one layer's backward. */
typedef struct g4_bwd_tmp {
    float *d_branch;        /* [N, H] gradient of a branch output (attn_proj, mlp_out, ...) */
    float *dx;              /* [N, H] gradient of a normed input (x_attn, x_mlp) */
    float *d_attn;          /* [N, nH*D] */
    float *dq, *dq_raw;     /* [N, nH*D] */
    float *dk, *dv;         /* [N, nKV*D] (own K/V of a layer that lends none) */
    float *dk_raw, *dv_raw; /* [N, nKV*D] */
    float *hh, *d_hh;       /* [N, I] */
    float *dgate, *dup;     /* [N, I] */
    float *ple_in, *d_ple_gated, *d_ple_gate; /* [N, P] */
    float *lora_x, *lora_d;                   /* [N, r] scaled adapter input, adapter gradient */
    /* MoE */
    float *d_ffw;              /* [N, H] gradient of m1 + m2 */
    float *d_moe_out;          /* [N, H] */
    float *dx_moe;             /* [N, H] gradient of x_moe */
    float *xg, *y, *dyg, *dxg; /* [N, H] one expert's rows */
    float *act, *dact;         /* [N, I_e] */
    float *dgu;                /* [N, 2 I_e] */
    float *dw;                 /* [N, K] gradient of the final expert weights */
    float *dlogits;            /* [N, E] */
    float *dxr;                /* [N, H] gradient of router_x */
    float *lora_b, *lora_db;   /* [max(2 I_e, H), r] one expert's lora_B and its gradient */
} g4_bwd_tmp;
void g4_carve_bwd_tmp(g4_model *m, g4_bwd_tmp *t, int l, int N);

/* One layer (g4_layer.c). fwd writes h_out [N, H]. */
void g4_layer_forward(g4_model *m, int l, g4_layer_acts *a, float *h_out);
/* dh [N, H]: in, the gradient of the layer's output; out, that of its input. */
void g4_layer_backward(g4_model *m, int l, g4_layer_acts *a, float *dh);

/* The MoE block (g4_moe.c). Forward: from h_mid and mlp_out to ffw_sum (= m1 + m2), keeping its
 * activations in a. Backward: d_ffw in; adds the block's gradient into dh_mid and into the dense
 * MLP's output gradient d_mlp_out (through post_feedforward_layernorm_1). */
void g4_moe_forward(g4_model *m, int l, g4_layer_acts *a, g4_fwd_tmp *t);
void g4_moe_backward(g4_model *m, int l, g4_layer_acts *a, g4_bwd_tmp *t, float *dh_mid,
                     float *d_mlp_out);

/* Linear maps with an optional adapter (g4_linear.c). xa [N, r] saves x Aᵀ for the backward. */
void g4_lin_forward(g4_model *m, const g4_param *p, float *y, const float *x, int N, float *xa,
                    float *lora_tmp);
/* dx may be NULL (nothing upstream needs it). */
void g4_lin_backward(g4_model *m, const g4_param *p, float *dx, const float *dy, const float *x,
                     int N, const float *xa, float *lora_x, float *lora_d);
/* Whether a parameter (or its adapter) has gradients to receive. */
static inline bool g4_param_trained(const g4_param *p) {
    return p && (p->grad || (p->lora && p->lora->dA));
}
/* The largest ops scratch any kernel call of this model needs. */
size_t g4_kernel_scratch_bytes(const g4_model *m);

#endif
