/* g4_acts.c: where every buffer of the forward and backward lives (see g4_internal.h).
 *
 * The same functions carve measuring arenas (to size them) and real ones (to use them). The
 * order of the tensors follows g4_memory.h's list.
 */
#include "model/g4_internal.h"

#include "base/err.h"
#include "base/threads.h"

#include <assert.h>
#include <string.h>

static float *F(eft_arena *a, int64_t n) {
    return eft_arena_alloc(a, (size_t)n * sizeof(float));
}

/* The adapter rank of a parameter (0 without one). */
static int rank_of(const g4_param *p) {
    return p && p->lora ? p->lora->r : 0;
}

static const g4_param *layer_lin(const g4_weights *w, int l, int k) {
    const g4_layer_params *L = &w->layers[l];
    const g4_param *by_kind[G4L_N] = {L->q,
                                      L->k,
                                      L->v,
                                      L->o,
                                      L->gate,
                                      L->up,
                                      L->down,
                                      L->ple_gate,
                                      L->ple_proj,
                                      L->router_proj,
                                      L->experts_gate_up,
                                      L->experts_down};
    return by_kind[k];
}

/* The sizes one layer's forward state needs. The recompute replay set uses the union over all
 * layers (every field present, each as large as the largest layer's). */
typedef struct dims {
    int64_t qd, kvd, nH, nkv, I, P, E, K, Ie;
    bool kv, v_raw, ple, keep_kv, moe;
    int rank[G4L_N];
} dims;

static dims layer_dims(const g4_model *m, int l) {
    const g4_plan *p = m->plan;
    const g4_layer *y = &p->layers[l];
    dims d = {.qd = p->nH * y->head_dim,
              .kvd = (int64_t)y->n_kv * y->head_dim,
              .nH = p->nH,
              .nkv = y->n_kv,
              .I = y->mlp_width,
              .P = y->ple ? p->P : 0,
              .kv = !y->kv_shared,
              .v_raw = !y->kv_shared && !y->k_eq_v,
              .ple = y->ple,
              .keep_kv = y->stores_kv,
              .moe = y->moe,
              .E = y->moe ? p->cfg->num_experts : 0,
              .K = y->moe ? p->cfg->top_k_experts : 0,
              .Ie = y->moe ? p->cfg->moe_intermediate_size : 0};
    for (int k = 0; k < G4L_N; k++) d.rank[k] = rank_of(layer_lin(m->w, l, k));
    return d;
}

static dims union_dims(const g4_model *m) {
    dims u = layer_dims(m, 0);
    for (int l = 1; l < m->plan->L; l++) {
        dims d = layer_dims(m, l);
        u.qd = EFT_MAX(u.qd, d.qd), u.kvd = EFT_MAX(u.kvd, d.kvd), u.nkv = EFT_MAX(u.nkv, d.nkv);
        u.I = EFT_MAX(u.I, d.I), u.P = EFT_MAX(u.P, d.P);
        u.kv |= d.kv, u.v_raw |= d.v_raw, u.ple |= d.ple, u.moe |= d.moe;
        u.E = EFT_MAX(u.E, d.E), u.K = EFT_MAX(u.K, d.K), u.Ie = EFT_MAX(u.Ie, d.Ie);
        for (int k = 0; k < G4L_N; k++) u.rank[k] = EFT_MAX(u.rank[k], d.rank[k]);
    }
    return u;
}

/* full: everything the backward reads; else (recompute) the input and a donor's K/V. with_h_in:
 * false for the replay set, whose h_in points at the replayed layer's kept input. */
static void carve(eft_arena *a, g4_layer_acts *x, const dims *d, int64_t N, int64_t H, bool full,
                  bool with_h_in) {
    memset(x, 0, sizeof *x);
    if (with_h_in) x->h_in = F(a, N * H);
    if (!full) {
        if (d->keep_kv) x->k = F(a, N * d->kvd), x->v = F(a, N * d->kvd);
        return;
    }
    x->rstd_attn = F(a, N);
    x->x_attn = F(a, N * H);
    x->q_raw = F(a, N * d->qd);
    x->rstd_q = F(a, N * d->nH);
    x->q = F(a, N * d->qd);
    if (d->kv) {
        x->k_raw = F(a, N * d->kvd);
        if (d->v_raw) x->v_raw = F(a, N * d->kvd);
        x->rstd_k = F(a, N * d->nkv);
        x->rstd_v = F(a, N * d->nkv);
        x->k = F(a, N * d->kvd);
        x->v = F(a, N * d->kvd);
    }
    x->attn = F(a, N * d->qd);
    x->lse = F(a, d->nH * N);
    x->attn_proj = F(a, N * H);
    x->rstd_post_attn = F(a, N);
    x->h_mid = F(a, N * H);
    x->rstd_pre_ffw = F(a, N);
    x->x_mlp = F(a, N * H);
    x->gate = F(a, N * d->I);
    x->up = F(a, N * d->I);
    x->mlp_out = F(a, N * H);
    x->rstd_post_ffw = F(a, N);
    if (d->ple) {
        x->h_ple = F(a, N * H);
        x->ple_gate = F(a, N * d->P);
        x->ple_gated = F(a, N * d->P);
        x->ple_proj = F(a, N * H);
        x->rstd_ple = F(a, N);
    }
    for (int k = 0; k < G4L_N; k++) {
        int64_t rows = k == G4L_EXPERTS_GATE_UP || k == G4L_EXPERTS_DOWN ? N * d->K : N;
        if (d->rank[k]) x->xa[k] = F(a, rows * d->rank[k]);
    }
    if (d->moe) {
        x->rstd_post_ffw_1 = F(a, N);
        x->rstd_router = F(a, N);
        x->router_x = F(a, N * H);
        x->topk_idx = eft_arena_alloc(a, (size_t)(N * d->K) * sizeof(int32_t));
        x->topk_w = F(a, N * d->K);
        x->slot_order = eft_arena_alloc(a, (size_t)(N * d->K) * sizeof(int32_t));
        x->expert_start = eft_arena_alloc(a, (size_t)(d->E + 1) * sizeof(int32_t));
        x->rstd_pre_ffw_2 = F(a, N);
        x->x_moe = F(a, N * H);
        x->expert_gu = F(a, N * d->K * 2 * d->Ie);
        x->moe_out = F(a, N * H);
        x->rstd_post_ffw_2 = F(a, N);
        x->ffw_sum = F(a, N * H);
    }
}

void g4_carve_layer(g4_model *m, eft_arena *a, g4_layer_acts *x, int l, int N, bool full) {
    dims d = layer_dims(m, l);
    carve(a, x, &d, N, m->plan->H, full, true);
}

static int max_rank(const g4_model *m) {
    int r = 0;
    for (int i = 0; i < m->w->ts->n; i++) r = EFT_MAX(r, rank_of(&m->w->params[i]));
    return r;
}

void g4_carve_state(g4_model *m, g4_state *s, int N) {
    const g4_plan *p = m->plan;
    eft_arena *a = &m->acts, *sc = &m->scratch;
    int64_t H = p->H, LP = (int64_t)p->L * p->P;
    s->doc_start = eft_arena_alloc(a, (size_t)N * sizeof(int32_t));
    for (int k = 0; k < G4_NATTN_KINDS; k++) {
        int half = 0;
        for (int l = 0; l < p->L; l++)
            if (p->layers[l].kind == (g4_attn_kind)k) half = p->layers[l].head_dim / 2;
        s->cos[k] = s->sin[k] = s->inv_freq[k] = NULL;
        if (!half) continue;
        s->inv_freq[k] = F(a, half);
        s->cos[k] = F(a, (int64_t)N * half);
        s->sin[k] = F(a, (int64_t)N * half);
    }
    for (int l = 0; l < p->L; l++) g4_carve_layer(m, a, &s->layers[l], l, N, !m->recompute);
    if (m->recompute) {
        dims u = union_dims(m);
        carve(a, &s->replay, &u, N, H, true, false);
    }
    if (p->P) {
        s->ple = F(a, N * LP);
        s->ple_ctx = F(a, N * LP);
        s->rstd_ple_ctx = F(a, (int64_t)N * p->L);
        int r = rank_of(m->w->ple_model_proj);
        s->ple_xa = r ? F(a, (int64_t)N * r) : NULL;
    }
    s->h_final = F(a, N * H);
    s->rstd_final = F(a, N);
    s->x_final = F(a, N * H);
    s->token_lse = F(a, N);

    s->dh = F(sc, N * H);
    for (int k = 0; k < G4_NATTN_KINDS; k++) s->dkv[k][0] = s->dkv[k][1] = NULL;
    for (int l = 0; l < p->L; l++) {
        const g4_layer *y = &p->layers[l];
        if (!y->stores_kv) continue;
        s->dkv[y->kind][0] = F(sc, (int64_t)N * y->n_kv * y->head_dim);
        s->dkv[y->kind][1] = F(sc, (int64_t)N * y->n_kv * y->head_dim);
    }
    s->d_ple = p->P ? F(sc, N * LP) : NULL;
    int64_t drop_in = 0;
    for (int i = 0; i < m->w->ts->n; i++) {
        const g4_param *par = &m->w->params[i];
        if (par->lora && par->lora->dropout > 0) drop_in = EFT_MAX(drop_in, par->t->in);
    }
    s->drop_x = drop_in ? F(sc, (int64_t)N * drop_in) : NULL;
    s->drop_dx = drop_in ? F(sc, (int64_t)N * drop_in) : NULL;
    s->kernel_bytes = g4_kernel_scratch_bytes(m);
    s->kernel = eft_arena_alloc(sc, s->kernel_bytes);
    s->layer_mark = eft_arena_mark(sc);
}

void g4_carve_fwd_tmp(g4_model *m, g4_fwd_tmp *t, int l, int N) {
    const g4_plan *p = m->plan;
    eft_arena *a = &m->scratch;
    t->hh = F(a, (int64_t)N * p->layers[l].mlp_width);
    t->tmp = F(a, (int64_t)N * p->H);
    t->ple_in = p->P ? F(a, (int64_t)N * p->P) : NULL;
    int r = max_rank(m);
    t->lora = r ? F(a, (int64_t)N * r) : NULL;
    const g4_layer *y = &p->layers[l];
    t->logits = t->xg = t->y = t->act = t->m2 = t->lora_b = NULL;
    if (y->moe) {
        int64_t H = p->H, E = p->cfg->num_experts, Ie = p->cfg->moe_intermediate_size;
        t->logits = F(a, (int64_t)N * E);
        t->xg = F(a, (int64_t)N * H);
        t->y = F(a, (int64_t)N * H);
        t->act = F(a, (int64_t)N * Ie);
        t->m2 = F(a, (int64_t)N * H);
        if (r) t->lora_b = F(a, EFT_MAX(2 * Ie, H) * r);
    }
}

void g4_carve_bwd_tmp(g4_model *m, g4_bwd_tmp *t, int l, int N) {
    const g4_plan *p = m->plan;
    const g4_layer *y = &p->layers[l];
    eft_arena *a = &m->scratch;
    int64_t H = p->H, qd = p->nH * y->head_dim, kvd = (int64_t)y->n_kv * y->head_dim;
    int64_t I = y->mlp_width, P = p->P;
    memset(t, 0, sizeof *t);
    t->d_branch = F(a, N * H);
    t->dx = F(a, N * H);
    t->d_attn = F(a, N * qd);
    t->dq = F(a, N * qd);
    t->dq_raw = F(a, N * qd);
    if (!y->kv_shared) {
        if (!y->stores_kv) t->dk = F(a, N * kvd), t->dv = F(a, N * kvd);
        t->dk_raw = F(a, N * kvd);
        if (!y->k_eq_v) t->dv_raw = F(a, N * kvd);
    }
    t->hh = F(a, N * I);
    t->d_hh = F(a, N * I);
    t->dgate = F(a, N * I);
    t->dup = F(a, N * I);
    if (y->ple) {
        t->ple_in = F(a, N * P);
        t->d_ple_gated = F(a, N * P);
        t->d_ple_gate = F(a, N * P);
    }
    int r = max_rank(m);
    if (r) t->lora_x = F(a, (int64_t)N * r), t->lora_d = F(a, (int64_t)N * r);
    if (y->moe) {
        int64_t E = p->cfg->num_experts, K = p->cfg->top_k_experts;
        int64_t Ie = p->cfg->moe_intermediate_size;
        t->d_ffw = F(a, N * H);
        t->d_moe_out = F(a, N * H);
        t->dx_moe = F(a, N * H);
        t->xg = F(a, N * H);
        t->y = F(a, N * H);
        t->dyg = F(a, N * H);
        t->dxg = F(a, N * H);
        t->act = F(a, N * Ie);
        t->dact = F(a, N * Ie);
        t->dgu = F(a, N * 2 * Ie);
        t->dw = F(a, N * K);
        t->dlogits = F(a, N * E);
        t->dxr = F(a, N * H);
        if (r) {
            t->lora_b = F(a, EFT_MAX(2 * Ie, H) * r);
            t->lora_db = F(a, EFT_MAX(2 * Ie, H) * r);
        }
    }
}

size_t g4_kernel_scratch_bytes(const g4_model *m) {
    const g4_plan *p = m->plan;
    const g4_weights *w = m->w;
    int nt = eft_threads();
    size_t b = 0;
    for (int i = 0; i < w->ts->n; i++) {
        const g4_param *par = &w->params[i];
        const g4_tensor *t = par->t;
        if (t->linear == G4_LIN_NONE || t->linear == G4_LIN_LM_HEAD) continue;
        b = EFT_MAX(b, ops_linear_scratch_bytes((int)t->in, (int)t->out, par->w.dtype, nt));
        if (par->lora) {
            int r = par->lora->r;
            b = EFT_MAX(b, ops_linear_scratch_bytes((int)t->in, r, OPS_W_REAL, nt));
            b = EFT_MAX(b, ops_linear_scratch_bytes(r, (int)t->out, OPS_W_REAL, nt));
        }
    }
    const g4_param *head = w->lm_head ? w->lm_head : w->embed;
    /* The embedding lookup reads the table directly; the PLE model projection is a linear. */
    b = EFT_MAX(b, ops_attention_scratch_bytes(p->max_head_dim, nt));
    b = EFT_MAX(b, ops_lmhead_ce_scratch_bytes((int)p->H, head->w.dtype, head->grad != NULL, nt));
    b = EFT_MAX(b, ops_lmhead_ce_eval_scratch_bytes((int)p->H, head->w.dtype, nt));
    b = EFT_MAX(b, ops_linear_scratch_bytes((int)p->H, (int)p->V, head->w.dtype, nt));
    return b;
}
