/* g4_moe.c: the mixture-of-experts block of 26B-A4B, forward and backward
 * (../shared/spec/gemma4.md sections 4.3, 6 and 7.11).
 *
 *   m1  = norm(mlp_out; post_feedforward_layernorm_1)          the dense MLP's branch
 *   p   = softmax(norm_noscale(h_mid) * router.scale * H^-1/2 . router.projᵀ)   over all E
 *   top = the K largest p (descending, the lower index first on ties), w~ = top / sum(top),
 *   w   = w~ * per_expert_scale[expert]
 *   e   = norm(h_mid; pre_feedforward_layernorm_2)
 *   moe = sum over the token's K experts x of w * down_x(gelu(gate_x e) * up_x e)
 *   ffw = m1 + norm(moe; post_feedforward_layernorm_2)          (then post_feedforward_layernorm)
 *
 * Tokens are grouped by expert (a counting sort of the N*K slots), so each expert runs two
 * GEMMs over its own rows; outputs are added into each token in expert order, the order
 * transformers' index_add loop uses. The top-k indices are constants of the backward: gradients
 * reach only the selected logits (w~ is a softmax over them).
 *
 * Adapters: router.proj is an nn.Linear (all-linear LoRA wraps it); the expert tensors take
 * PEFT's target_parameters LoRA, y += s (x A_xᵀ) B_xᵀ per expert x (peft/lora.h has the layout).
 * Each expert map runs through g4_linear.c as a parameter of its own (expert_map).
 */
#include "model/g4_internal.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#define Z(p, n) memset((p), 0, (size_t)(n) * sizeof(float))

typedef struct moe_dims {
    int N, H, E, K, Ie;
} moe_dims;

static moe_dims dims_of(const g4_model *m) {
    const g4_config *c = m->plan->cfg;
    return (moe_dims){((g4_state *)m->state)->N, (int)m->plan->H, c->num_experts, c->top_k_experts,
                      (int)c->moe_intermediate_size};
}

/* One expert's linear map as a parameter of its own, so that g4_linear.c runs it with its
 * adapter: the weight and gradient slices, and a g4_lora over A's rows x*r... and B's columns
 * j*E + x (PEFT's layout, peft/lora.h), gathered into b [out, r]. With db, the adapter's dB goes
 * to db [out, r] (zeroed here) for expert_map_done to add back. An NF4 expert tensor (QLoRA with
 * quantize_moe_experts) was quantised whole, as Axolotl flattens it: the expert's weight is a
 * view of it (q), whose blocks and absmax groups stay the whole tensor's (ops/nf4.h). */
typedef struct expert_map {
    g4_param p;
    g4_lora L;
    ops_nf4 q; /* the NF4 view p.w points to */
} expert_map;

/* Expert x's [out, in] slice of a 3-D expert tensor w (per = out * in values each). */
static ops_weight expert_slice(expert_map *v, ops_weight w, int x, size_t per) {
    size_t off = (size_t)x * per;
    switch (w.dtype) {
    case OPS_W_NF4:
        v->q = ops_nf4_view(w.data, (int64_t)off, (int64_t)per);
        return ops_w_nf4(&v->q);
    case OPS_W_BF16:
        return ops_w_bf16((const uint16_t *)w.data + off);
    default:
        return ops_w_real((const float *)w.data + off);
    }
}

static void expert_map_open(expert_map *v, const g4_param *P, int x, int E, float *b, float *db) {
    const g4_tensor *t = P->t;
    size_t per = (size_t)t->out * (size_t)t->in;
    v->p = (g4_param){.t = t,
                      .w = expert_slice(v, P->w, x, per),
                      .grad = P->grad ? P->grad + (size_t)x * per : NULL};
    const g4_lora *L = P->lora;
    if (!L) return;
    assert(L->dropout == 0); /* lora_attach refuses it, as PEFT does */
    int r = L->r;
    size_t a_off = (size_t)x * r * (size_t)t->in;
    v->L = (g4_lora){.r = r,
                     .scale = L->scale,
                     .A = L->A + a_off,
                     .dA = L->dA ? L->dA + a_off : NULL,
                     .B = b,
                     .dB = L->dB ? db : NULL};
    for (int64_t o = 0; o < t->out; o++)
        for (int j = 0; j < r; j++) b[o * r + j] = L->B[(o * r + j) * E + x];
    if (v->L.dB) memset(db, 0, (size_t)t->out * r * sizeof(float));
    v->p.lora = &v->L;
}

/* Adds the expert's adapter gradient back into the stacked dB. */
static void expert_map_done(const expert_map *v, const g4_param *P, int x, int E) {
    if (!v->p.lora || !v->L.dB) return;
    int r = v->L.r;
    for (int64_t o = 0; o < P->t->out; o++)
        for (int j = 0; j < r; j++) P->lora->dB[(o * r + j) * E + x] += v->L.dB[o * r + j];
}

/* The saved adapter inputs x Aᵀ of expert tensor P from slot position `start` on (NULL: no
 * adapter). */
static float *xa_at(const g4_layer_acts *a, int kind, const g4_param *P, int start) {
    return P->lora ? a->xa[kind] + (size_t)start * (size_t)P->lora->r : NULL;
}

static float eps_of(const g4_model *m) {
    return (float)m->plan->cfg->rms_norm_eps;
}

/* Router: router_x, the top-k experts and their renormalised weights; then the slots grouped by
 * expert. logits [N, E] is scratch. */
static void route(g4_model *m, const g4_layer_params *W, g4_layer_acts *a, float *logits,
                  float *lora_tmp, moe_dims d) {
    ops_rmsnorm_forward(a->router_x, a->rstd_router, a->h_mid, NULL, d.N, d.H, eps_of(m));
    float root = (float)pow((double)d.H, -0.5);
    const float *scale = W->router_scale->f32;
    for (int t = 0; t < d.N; t++) {
        float *x = a->router_x + (size_t)t * d.H;
        for (int c = 0; c < d.H; c++) x[c] = x[c] * scale[c] * root;
    }
    g4_lin_forward(m, W->router_proj, logits, a->router_x, d.N, a->xa[G4L_ROUTER], lora_tmp);
    int32_t *count = a->expert_start; /* [E+1], counts first */
    memset(count, 0, (size_t)(d.E + 1) * sizeof(int32_t));
    for (int t = 0; t < d.N; t++) {
        float *p = logits + (size_t)t * d.E, mx = p[0], sum = 0;
        for (int x = 1; x < d.E; x++) mx = p[x] > mx ? p[x] : mx;
        for (int x = 0; x < d.E; x++) sum += p[x] = expf(p[x] - mx);
        for (int x = 0; x < d.E; x++) p[x] /= sum;
        int32_t *idx = a->topk_idx + (size_t)t * d.K;
        float *w = a->topk_w + (size_t)t * d.K, top = 0;
        for (int k = 0; k < d.K; k++) { /* K is small: repeated selection */
            int best = -1;
            for (int x = 0; x < d.E; x++) {
                bool taken = false;
                for (int j = 0; j < k; j++) taken |= idx[j] == x;
                if (!taken && (best < 0 || p[x] > p[best])) best = x;
            }
            idx[k] = best;
            w[k] = p[best];
            top += p[best];
            count[best + 1]++;
        }
        for (int k = 0; k < d.K; k++) w[k] /= top;
    }
    for (int x = 0; x < d.E; x++) count[x + 1] += count[x];
    /* Slots in token order within each expert: a stable counting sort. */
    int32_t *fill = (int32_t *)logits; /* the probabilities are no longer needed */
    memcpy(fill, count, (size_t)d.E * sizeof(int32_t));
    for (int t = 0; t < d.N; t++)
        for (int k = 0; k < d.K; k++) {
            int x = a->topk_idx[(size_t)t * d.K + k];
            a->slot_order[fill[x]++] = t * d.K + k;
        }
}

/* The final weight of a slot: w~ * per_expert_scale. */
static inline float slot_weight(const g4_layer_params *W, const g4_layer_acts *a, int slot, int x) {
    return a->topk_w[slot] * W->per_expert_scale->f32[x];
}

static void gather(float *dst, const float *src, const int32_t *slots, int n, int K, int H) {
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)i * H, src + (size_t)(slots[i] / K) * H, (size_t)H * sizeof(float));
}

void g4_moe_forward(g4_model *m, int l, g4_layer_acts *a, g4_fwd_tmp *t) {
    const g4_layer_params *W = &m->w->layers[l];
    moe_dims d = dims_of(m);
    float *m1 = a->ffw_sum;
    ops_rmsnorm_forward(m1, a->rstd_post_ffw_1, a->mlp_out, W->post_ffw_norm_1->f32, d.N, d.H,
                        eps_of(m));
    route(m, W, a, t->logits, t->lora, d);
    ops_rmsnorm_forward(a->x_moe, a->rstd_pre_ffw_2, a->h_mid, W->pre_ffw_norm_2->f32, d.N, d.H,
                        eps_of(m));
    Z(a->moe_out, (size_t)d.N * d.H);
    for (int x = 0; x < d.E; x++) {
        int start = a->expert_start[x], n = a->expert_start[x + 1] - start;
        if (!n) continue;
        const int32_t *slots = a->slot_order + start;
        float *gu = a->expert_gu + (size_t)start * 2 * d.Ie; /* [n, 2 I_e]: gate | up */
        gather(t->xg, a->x_moe, slots, n, d.K, d.H);
        expert_map gum, dnm;
        expert_map_open(&gum, W->experts_gate_up, x, d.E, t->lora_b, NULL);
        g4_lin_forward(m, &gum.p, gu, t->xg, n,
                       xa_at(a, G4L_EXPERTS_GATE_UP, W->experts_gate_up, start), t->lora);
        ops_geglu_forward(t->act, gu, gu + d.Ie, n, d.Ie, 2 * d.Ie);
        expert_map_open(&dnm, W->experts_down, x, d.E, t->lora_b, NULL);
        g4_lin_forward(m, &dnm.p, t->y, t->act, n,
                       xa_at(a, G4L_EXPERTS_DOWN, W->experts_down, start), t->lora);
        for (int i = 0; i < n; i++) {
            float w = slot_weight(W, a, slots[i], x);
            float *out = a->moe_out + (size_t)(slots[i] / d.K) * d.H;
            const float *y = t->y + (size_t)i * d.H;
            for (int c = 0; c < d.H; c++) out[c] += y[c] * w;
        }
    }
    ops_rmsnorm_forward(t->m2, a->rstd_post_ffw_2, a->moe_out, W->post_ffw_norm_2->f32, d.N, d.H,
                        eps_of(m));
    ops_acc(m1, t->m2, (size_t)d.N * d.H); /* ffw_sum = m1 + m2 */
}

/* The router's backward from the gradient of the final slot weights (t->dw [N, K]) into dh_mid
 * and the router's parameters. */
static void route_backward(g4_model *m, const g4_layer_params *W, g4_layer_acts *a, g4_bwd_tmp *t,
                           float *dh_mid, moe_dims d) {
    Z(t->dlogits, (size_t)d.N * d.E);
    float *dpes = W->per_expert_scale->grad;
    for (int tok = 0; tok < d.N; tok++) {
        const int32_t *idx = a->topk_idx + (size_t)tok * d.K;
        const float *wt = a->topk_w + (size_t)tok * d.K, *dw = t->dw + (size_t)tok * d.K;
        float *dl = t->dlogits + (size_t)tok * d.E;
        /* w = w~ * c: dc += dw * w~, dw~ = dw * c; w~ is a softmax over the selected logits. */
        double dot = 0;
        float dwt[64];
        assert(d.K <= 64);
        for (int k = 0; k < d.K; k++) {
            float c = W->per_expert_scale->f32[idx[k]];
            if (dpes) dpes[idx[k]] += dw[k] * wt[k];
            dwt[k] = dw[k] * c;
            dot += (double)dwt[k] * wt[k];
        }
        for (int k = 0; k < d.K; k++) dl[idx[k]] = wt[k] * (dwt[k] - (float)dot);
    }
    Z(t->dxr, (size_t)d.N * d.H);
    g4_lin_backward(m, W->router_proj, t->dxr, t->dlogits, a->router_x, d.N, a->xa[G4L_ROUTER],
                    t->lora_x, t->lora_d);
    /* router_x = n * scale * H^-1/2 with n = h_mid * rstd (no-scale norm). */
    float root = (float)pow((double)d.H, -0.5);
    const float *scale = W->router_scale->f32;
    float *dscale = W->router_scale->grad;
    for (int tok = 0; tok < d.N; tok++) {
        float r = a->rstd_router[tok];
        const float *h = a->h_mid + (size_t)tok * d.H;
        float *dx = t->dxr + (size_t)tok * d.H;
        for (int c = 0; c < d.H; c++) {
            if (dscale) dscale[c] += dx[c] * (h[c] * r) * root;
            dx[c] *= scale[c] * root; /* now d n */
        }
    }
    ops_rmsnorm_backward(dh_mid, NULL, t->dxr, a->h_mid, NULL, a->rstd_router, d.N, d.H);
}

void g4_moe_backward(g4_model *m, int l, g4_layer_acts *a, g4_bwd_tmp *t, float *dh_mid,
                     float *d_mlp_out) {
    const g4_layer_params *W = &m->w->layers[l];
    moe_dims d = dims_of(m);
    /* ffw = m1 + m2: both branches receive d_ffw. */
    Z(t->d_moe_out, (size_t)d.N * d.H);
    ops_rmsnorm_backward(t->d_moe_out, W->post_ffw_norm_2->grad, t->d_ffw, a->moe_out,
                         W->post_ffw_norm_2->f32, a->rstd_post_ffw_2, d.N, d.H);
    ops_rmsnorm_backward(d_mlp_out, W->post_ffw_norm_1->grad, t->d_ffw, a->mlp_out,
                         W->post_ffw_norm_1->f32, a->rstd_post_ffw_1, d.N, d.H);
    Z(t->dx_moe, (size_t)d.N * d.H);
    for (int x = 0; x < d.E; x++) {
        int start = a->expert_start[x], n = a->expert_start[x + 1] - start;
        if (!n) continue;
        const int32_t *slots = a->slot_order + start;
        const float *gu = a->expert_gu + (size_t)start * 2 * d.Ie;
        float *xa_gu = xa_at(a, G4L_EXPERTS_GATE_UP, W->experts_gate_up, start);
        float *xa_dn = xa_at(a, G4L_EXPERTS_DOWN, W->experts_down, start);
        expert_map gum, dnm;
        expert_map_open(&dnm, W->experts_down, x, d.E, t->lora_b, t->lora_db);
        /* y = act . downᵀ (+ its adapter), re-made for d w = <d moe_out, y>; its x Aᵀ is written
         * again with the same bits. */
        ops_geglu_forward(t->act, gu, gu + d.Ie, n, d.Ie, 2 * d.Ie);
        g4_lin_forward(m, &dnm.p, t->y, t->act, n, xa_dn, t->lora_x);
        for (int i = 0; i < n; i++) {
            int slot = slots[i];
            const float *g = t->d_moe_out + (size_t)(slot / d.K) * d.H;
            const float *y = t->y + (size_t)i * d.H;
            float *dy = t->dyg + (size_t)i * d.H, w = slot_weight(W, a, slot, x);
            double dot = 0;
            for (int c = 0; c < d.H; c++) dot += (double)g[c] * y[c], dy[c] = g[c] * w;
            t->dw[slot] = (float)dot;
        }
        Z(t->dact, (size_t)n * d.Ie);
        g4_lin_backward(m, &dnm.p, t->dact, t->dyg, t->act, n, xa_dn, t->lora_x, t->lora_d);
        expert_map_done(&dnm, W->experts_down, x, d.E);
        Z(t->dgu, (size_t)n * 2 * d.Ie);
        ops_geglu_backward(t->dgu, t->dgu + d.Ie, t->dact, gu, gu + d.Ie, n, d.Ie, 2 * d.Ie);
        gather(t->xg, a->x_moe, slots, n, d.K, d.H);
        Z(t->dxg, (size_t)n * d.H);
        expert_map_open(&gum, W->experts_gate_up, x, d.E, t->lora_b, t->lora_db);
        g4_lin_backward(m, &gum.p, t->dxg, t->dgu, t->xg, n, xa_gu, t->lora_x, t->lora_d);
        expert_map_done(&gum, W->experts_gate_up, x, d.E);
        for (int i = 0; i < n; i++)
            ops_acc(t->dx_moe + (size_t)(slots[i] / d.K) * d.H, t->dxg + (size_t)i * d.H,
                    (size_t)d.H);
    }
    ops_rmsnorm_backward(dh_mid, W->pre_ffw_norm_2->grad, t->dx_moe, a->h_mid,
                         W->pre_ffw_norm_2->f32, a->rstd_pre_ffw_2, d.N, d.H);
    route_backward(m, W, a, t, dh_mid, d);
}
