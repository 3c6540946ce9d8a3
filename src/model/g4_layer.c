/* g4_layer.c: one Gemma 4 decoder layer, forward and backward (../shared/spec/gemma4.md 4.3,
 * 4.4, 7).
 *
 *   x  = norm(h_in)                          input_layernorm
 *   q  = rope(norm_heads(x Wqᵀ))             q_norm per head
 *   k  = rope(norm_heads(x Wkᵀ))             k_norm per head (a shared layer reads its donor's)
 *   v  = norm_heads(x Wvᵀ, no scale)         k_eq_v: V from the raw k_proj output
 *   h_mid = h_in + norm(attention(q,k,v) Woᵀ)                  post_attention_layernorm
 *   h_ple = h_mid + norm(down(gelu(x' Wgᵀ) * x' Wuᵀ)), x' = norm(h_mid)   pre/post ffw norms
 *           (26B-A4B: norm(norm1(mlp) + norm2(experts(h_mid))), g4_moe.c)
 *   h_pre = h_ple + norm((gelu(h_ple Wpgᵀ) * ple_l) Wppᵀ)      PLE block (E2B, E4B)
 *   h_out = layer_scalar * h_pre
 *
 * The backward takes the gradient of h_out in dh and leaves that of h_in there; the residual
 * adds make each block's input gradient "dh += block backward". K and V gradients of a donor
 * layer collect those of every layer that shares its K/V (accumulators in the model state)
 * before the donor runs them back through RoPE, the norms and its projections.
 */
#include "model/g4_internal.h"

#include "base/err.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#define Z(p, n) memset((p), 0, (size_t)(n) * sizeof(float))

static float eps(const g4_model *m) {
    return (float)m->plan->cfg->rms_norm_eps;
}
static const float *wf(const g4_param *p) {
    return p ? p->f32 : NULL;
}
static float *gf(const g4_param *p) {
    return p ? p->grad : NULL;
}

/* Layer l's per-layer input, out of ple [N, L, P] into dst [N, P]. */
static void ple_slice(float *dst, const float *ple, int N, int L, int l, int64_t P) {
    for (int i = 0; i < N; i++)
        memcpy(dst + (size_t)i * P, ple + ((size_t)i * L + l) * P, (size_t)P * sizeof(float));
}

/* Layer l's attention: its heads and window over the batch's packed documents (scale 1). */
static ops_attn attn_shape(const g4_model *m, int l) {
    const g4_layer *y = &m->plan->layers[l];
    const g4_state *s = m->state;
    return (ops_attn){.T = s->N,
                      .nH = (int)m->plan->nH,
                      .nKV = y->n_kv,
                      .D = (int)y->head_dim,
                      .window = y->window,
                      .scale = 1.0,
                      .doc_start = s->doc_start};
}

/* ---- forward ---------------------------------------------------------------------------- */

void g4_layer_forward(g4_model *m, int l, g4_layer_acts *a, float *h_out) {
    const g4_plan *p = m->plan;
    const g4_layer *y = &p->layers[l];
    const g4_layer_params *W = &m->w->layers[l];
    g4_state *s = m->state;
    int N = s->N;
    int64_t H = p->H, D = y->head_dim, nH = p->nH, kv = y->n_kv, I = y->mlp_width, P = p->P;
    size_t mark = eft_arena_mark(&m->scratch);
    g4_fwd_tmp t;
    g4_carve_fwd_tmp(m, &t, l, N);

    /* Attention. */
    ops_rmsnorm_forward(a->x_attn, a->rstd_attn, a->h_in, wf(W->input_norm), N, (int)H, eps(m));
    g4_lin_forward(m, W->q, a->q_raw, a->x_attn, N, a->xa[G4L_Q], t.lora);
    ops_rmsnorm_forward(a->q, a->rstd_q, a->q_raw, wf(W->q_norm), (int)(N * nH), (int)D, eps(m));
    ops_rope_forward(a->q, s->cos[y->kind], s->sin[y->kind], N, (int)nH, (int)D);
    if (!y->kv_shared) {
        g4_lin_forward(m, W->k, a->k_raw, a->x_attn, N, a->xa[G4L_K], t.lora);
        const float *v_src = a->k_raw;
        if (!y->k_eq_v) {
            g4_lin_forward(m, W->v, a->v_raw, a->x_attn, N, a->xa[G4L_V], t.lora);
            v_src = a->v_raw;
        }
        ops_rmsnorm_forward(a->k, a->rstd_k, a->k_raw, wf(W->k_norm), (int)(N * kv), (int)D,
                            eps(m));
        ops_rope_forward(a->k, s->cos[y->kind], s->sin[y->kind], N, (int)kv, (int)D);
        ops_rmsnorm_forward(a->v, a->rstd_v, v_src, NULL, (int)(N * kv), (int)D, eps(m));
    }
    ops_attn at = attn_shape(m, l);
    ops_attention_forward(a->attn, a->lse, a->q, a->k, a->v, &at, s->kernel, s->kernel_bytes);
    g4_lin_forward(m, W->o, a->attn_proj, a->attn, N, a->xa[G4L_O], t.lora);
    ops_rmsnorm_forward(t.tmp, a->rstd_post_attn, a->attn_proj, wf(W->post_attn_norm), N, (int)H,
                        eps(m));
    ops_add(a->h_mid, a->h_in, t.tmp, (size_t)N * H);

    /* MLP. */
    ops_rmsnorm_forward(a->x_mlp, a->rstd_pre_ffw, a->h_mid, wf(W->pre_ffw_norm), N, (int)H,
                        eps(m));
    g4_lin_forward(m, W->gate, a->gate, a->x_mlp, N, a->xa[G4L_GATE], t.lora);
    g4_lin_forward(m, W->up, a->up, a->x_mlp, N, a->xa[G4L_UP], t.lora);
    ops_geglu_forward(t.hh, a->gate, a->up, N, (int)I, (int)I);
    g4_lin_forward(m, W->down, a->mlp_out, t.hh, N, a->xa[G4L_DOWN], t.lora);
    const float *ffw = a->mlp_out;
    if (y->moe) { /* the experts' branch joins the dense one before post_feedforward_layernorm */
        g4_moe_forward(m, l, a, &t);
        ffw = a->ffw_sum;
    }
    ops_rmsnorm_forward(t.tmp, a->rstd_post_ffw, ffw, wf(W->post_ffw_norm), N, (int)H, eps(m));
    float *h_pre = y->ple ? a->h_ple : h_out;
    ops_add(h_pre, a->h_mid, t.tmp, (size_t)N * H);

    /* Per-layer embeddings. */
    if (y->ple) {
        g4_lin_forward(m, W->ple_gate, a->ple_gate, a->h_ple, N, a->xa[G4L_PLE_GATE], t.lora);
        ple_slice(t.ple_in, s->ple, N, p->L, l, P);
        ops_geglu_forward(a->ple_gated, a->ple_gate, t.ple_in, N, (int)P, (int)P);
        g4_lin_forward(m, W->ple_proj, a->ple_proj, a->ple_gated, N, a->xa[G4L_PLE_PROJ], t.lora);
        ops_rmsnorm_forward(t.tmp, a->rstd_ple, a->ple_proj, wf(W->post_ple_norm), N, (int)H,
                            eps(m));
        ops_add(h_out, a->h_ple, t.tmp, (size_t)N * H);
    }
    ops_scale_forward(h_out, h_out, g4_layer_scalar(m->w, l), (size_t)N * H);
    eft_arena_reset(&m->scratch, mark);
}

/* ---- backward --------------------------------------------------------------------------- */

/* The PLE block: dh holds d h_pre; adds the block's d h_ple, and d ple[:, l] into s->d_ple. */
static void ple_backward(g4_model *m, int l, g4_layer_acts *a, float *dh, g4_bwd_tmp *t) {
    const g4_plan *p = m->plan;
    const g4_layer_params *W = &m->w->layers[l];
    g4_state *s = m->state;
    int N = s->N;
    int64_t H = p->H, P = p->P;
    Z(t->d_branch, N * H);
    ops_rmsnorm_backward(t->d_branch, gf(W->post_ple_norm), dh, a->ple_proj, wf(W->post_ple_norm),
                         a->rstd_ple, N, (int)H);
    Z(t->d_ple_gated, N * P);
    g4_lin_backward(m, W->ple_proj, t->d_ple_gated, t->d_branch, a->ple_gated, N,
                    a->xa[G4L_PLE_PROJ], t->lora_x, t->lora_d);
    /* ple_gated = gelu(ple_gate) * ple_l. */
    ple_slice(t->ple_in, s->ple, N, p->L, l, P);
    Z(t->d_ple_gate, N * P);
    float *d_ple_in = t->d_branch; /* free again: [N, P] fits in [N, H] */
    Z(d_ple_in, N * P);
    ops_geglu_backward(t->d_ple_gate, d_ple_in, t->d_ple_gated, a->ple_gate, t->ple_in, N, (int)P,
                       (int)P);
    if (s->d_ple)
        for (int i = 0; i < N; i++) {
            float *d = s->d_ple + ((size_t)i * p->L + l) * P;
            const float *g = d_ple_in + (size_t)i * P;
            for (int j = 0; j < P; j++) d[j] += g[j];
        }
    g4_lin_backward(m, W->ple_gate, dh, t->d_ple_gate, a->h_ple, N, a->xa[G4L_PLE_GATE], t->lora_x,
                    t->lora_d);
}

/* The MLP block: dh holds d h_ple (or d h_pre); adds the block's d h_mid. */
static void mlp_backward(g4_model *m, int l, g4_layer_acts *a, float *dh, g4_bwd_tmp *t) {
    const g4_plan *p = m->plan;
    const g4_layer_params *W = &m->w->layers[l];
    int N = ((g4_state *)m->state)->N;
    int64_t H = p->H, I = p->layers[l].mlp_width;
    Z(t->d_branch, N * H);
    if (p->layers[l].moe) { /* d_branch = d mlp_out through post_feedforward_layernorm_1 */
        Z(t->d_ffw, N * H);
        ops_rmsnorm_backward(t->d_ffw, gf(W->post_ffw_norm), dh, a->ffw_sum, wf(W->post_ffw_norm),
                             a->rstd_post_ffw, N, (int)H);
        g4_moe_backward(m, l, a, t, dh, t->d_branch);
    } else {
        ops_rmsnorm_backward(t->d_branch, gf(W->post_ffw_norm), dh, a->mlp_out,
                             wf(W->post_ffw_norm), a->rstd_post_ffw, N, (int)H);
    }
    ops_geglu_forward(t->hh, a->gate, a->up, N, (int)I, (int)I); /* down_proj's input, re-made */
    Z(t->d_hh, N * I);
    g4_lin_backward(m, W->down, t->d_hh, t->d_branch, t->hh, N, a->xa[G4L_DOWN], t->lora_x,
                    t->lora_d);
    Z(t->dgate, N * I);
    Z(t->dup, N * I);
    ops_geglu_backward(t->dgate, t->dup, t->d_hh, a->gate, a->up, N, (int)I, (int)I);
    Z(t->dx, N * H);
    g4_lin_backward(m, W->gate, t->dx, t->dgate, a->x_mlp, N, a->xa[G4L_GATE], t->lora_x,
                    t->lora_d);
    g4_lin_backward(m, W->up, t->dx, t->dup, a->x_mlp, N, a->xa[G4L_UP], t->lora_x, t->lora_d);
    ops_rmsnorm_backward(dh, gf(W->pre_ffw_norm), t->dx, a->h_mid, wf(W->pre_ffw_norm),
                         a->rstd_pre_ffw, N, (int)H);
}

/* The attention block: dh holds d h_mid; adds the block's d h_in. */
static void attn_backward(g4_model *m, int l, g4_layer_acts *a, float *dh, g4_bwd_tmp *t) {
    const g4_plan *p = m->plan;
    const g4_layer *y = &p->layers[l];
    const g4_layer_params *W = &m->w->layers[l];
    g4_state *s = m->state;
    int N = s->N;
    int64_t H = p->H, D = y->head_dim, nH = p->nH, kv = y->n_kv;
    int64_t qd = nH * D, kvd = kv * D;
    Z(t->d_branch, N * H);
    ops_rmsnorm_backward(t->d_branch, gf(W->post_attn_norm), dh, a->attn_proj,
                         wf(W->post_attn_norm), a->rstd_post_attn, N, (int)H);
    Z(t->d_attn, N * qd);
    g4_lin_backward(m, W->o, t->d_attn, t->d_branch, a->attn, N, a->xa[G4L_O], t->lora_x,
                    t->lora_d);

    /* K/V gradients: a donor's (or a sharing layer's) go to the donor accumulators, which the
     * sharing layers (later, so earlier in the backward) have already added to. */
    int donor = y->kv_shared ? y->kv_donor : (y->stores_kv ? l : -1);
    float *dk = donor >= 0 ? s->dkv[y->kind][0] : t->dk;
    float *dv = donor >= 0 ? s->dkv[y->kind][1] : t->dv;
    if (donor < 0) Z(dk, N * kvd), Z(dv, N * kvd);
    Z(t->dq, N * qd);
    ops_attn at = attn_shape(m, l);
    ops_attention_backward(t->dq, dk, dv, t->d_attn, a->q, a->k, a->v, a->attn, a->lse, &at,
                           s->kernel, s->kernel_bytes);

    ops_rope_backward(t->dq, s->cos[y->kind], s->sin[y->kind], N, (int)nH, (int)D);
    Z(t->dq_raw, N * qd);
    ops_rmsnorm_backward(t->dq_raw, gf(W->q_norm), t->dq, a->q_raw, wf(W->q_norm), a->rstd_q,
                         (int)(N * nH), (int)D);
    Z(t->dx, N * H);
    g4_lin_backward(m, W->q, t->dx, t->dq_raw, a->x_attn, N, a->xa[G4L_Q], t->lora_x, t->lora_d);
    if (!y->kv_shared) {
        ops_rope_backward(dk, s->cos[y->kind], s->sin[y->kind], N, (int)kv, (int)D);
        Z(t->dk_raw, N * kvd);
        ops_rmsnorm_backward(t->dk_raw, gf(W->k_norm), dk, a->k_raw, wf(W->k_norm), a->rstd_k,
                             (int)(N * kv), (int)D);
        if (y->k_eq_v) {
            /* V is v_norm(k_raw): its gradient joins k_raw's. */
            ops_rmsnorm_backward(t->dk_raw, NULL, dv, a->k_raw, NULL, a->rstd_v, (int)(N * kv),
                                 (int)D);
        } else {
            Z(t->dv_raw, N * kvd);
            ops_rmsnorm_backward(t->dv_raw, NULL, dv, a->v_raw, NULL, a->rstd_v, (int)(N * kv),
                                 (int)D);
            g4_lin_backward(m, W->v, t->dx, t->dv_raw, a->x_attn, N, a->xa[G4L_V], t->lora_x,
                            t->lora_d);
        }
        g4_lin_backward(m, W->k, t->dx, t->dk_raw, a->x_attn, N, a->xa[G4L_K], t->lora_x,
                        t->lora_d);
    }
    ops_rmsnorm_backward(dh, gf(W->input_norm), t->dx, a->h_in, wf(W->input_norm), a->rstd_attn, N,
                         (int)H);
}

void g4_layer_backward(g4_model *m, int l, g4_layer_acts *a, float *dh) {
    g4_state *s = m->state;
    int N = s->N;
    size_t mark = eft_arena_mark(&m->scratch);
    g4_bwd_tmp t;
    g4_carve_bwd_tmp(m, &t, l, N);
    /* h_out = layer_scalar * h_pre: a constant (a buffer in transformers, never trained). */
    float sc = g4_layer_scalar(m->w, l);
    for (size_t i = 0; i < (size_t)N * m->plan->H; i++) dh[i] *= sc;
    if (m->plan->layers[l].ple) ple_backward(m, l, a, dh, &t);
    mlp_backward(m, l, a, dh, &t);
    attn_backward(m, l, a, dh, &t);
    eft_arena_reset(&m->scratch, mark);
}
