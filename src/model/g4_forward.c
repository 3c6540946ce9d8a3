/* g4_forward.c: the whole model: embeddings, per-layer embeddings, the layers, the final norm
 * and the fused loss, forward and backward (see g4_model.h). The layers themselves are in
 * g4_layer.c. */
#include "model/g4_internal.h"

#include "base/err.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#define Z(p, n) memset((p), 0, (size_t)(n) * sizeof(float))

void g4_batch_targets(int32_t *target, const int32_t *labels, const int32_t *row_start, int rows,
                      int N) {
    for (int r = 0; r < (row_start ? rows : 1); r++) {
        int a = row_start ? row_start[r] : 0, b = row_start ? row_start[r + 1] : N;
        for (int t = a; t < b; t++) target[t] = t + 1 < b ? labels[t + 1] : OPS_IGNORE_INDEX;
    }
}

static const g4_param *head_of(const g4_weights *w) {
    return w->lm_head ? w->lm_head : w->embed;
}

/* ---- sizing ----------------------------------------------------------------------------- */

/* Carves everything a batch of N tokens can need; on measuring arenas this sizes them. */
static void carve_all(g4_model *m, g4_state *s, int N) {
    g4_carve_state(m, s, N);
    size_t mark = eft_arena_mark(&m->scratch);
    for (int l = 0; l < m->plan->L; l++) {
        g4_fwd_tmp f;
        g4_bwd_tmp b;
        /* The replayed forward of a layer runs on top of its backward's h_out. */
        eft_arena_alloc(&m->scratch, (size_t)N * m->plan->H * sizeof(float));
        g4_carve_fwd_tmp(m, &f, l, N);
        eft_arena_reset(&m->scratch, mark);
        eft_arena_alloc(&m->scratch, (size_t)N * m->plan->H * sizeof(float));
        g4_carve_bwd_tmp(m, &b, l, N);
        eft_arena_reset(&m->scratch, mark);
    }
    /* The head's temporaries: the LM head input gradient, the PLE backward's buffers. */
    int64_t LP = (int64_t)m->plan->L * m->plan->P;
    eft_arena_alloc(&m->scratch, (size_t)N * m->plan->H * sizeof(float));
    if (LP) eft_arena_alloc(&m->scratch, 2 * (size_t)N * LP * sizeof(float));
    eft_arena_reset(&m->scratch, mark);
}

void g4_model_init(g4_model *m, const g4_plan *p, g4_weights *w, int max_tokens, bool recompute) {
    memset(m, 0, sizeof *m);
    m->plan = p;
    m->w = w;
    m->recompute = recompute;
    m->max_tokens = max_tokens;
    g4_state *s = eft_calloc(1, sizeof *s);
    s->layers = eft_calloc((size_t)p->L, sizeof *s->layers);
    m->state = s;
    eft_arena_init_measure(&m->acts);
    eft_arena_init_measure(&m->scratch);
    carve_all(m, s, max_tokens);
    size_t acts = m->acts.peak, scratch = m->scratch.peak;
    eft_arena_init(&m->acts, acts);
    eft_arena_init(&m->scratch, scratch);
    g4_layer_acts *layers = s->layers;
    memset(s, 0, sizeof *s);
    s->layers = layers;
    carve_all(m, s, max_tokens);
    s->replay_k = s->replay.k;
    s->replay_v = s->replay.v;
    /* A sharing layer reads its donor's K/V. */
    if (!recompute)
        for (int l = 0; l < p->L; l++)
            if (p->layers[l].kv_shared) {
                s->layers[l].k = s->layers[p->layers[l].kv_donor].k;
                s->layers[l].v = s->layers[p->layers[l].kv_donor].v;
            }
    for (int k = 0; k < G4_NATTN_KINDS; k++)
        for (int l = 0; l < p->L; l++)
            if (s->inv_freq[k] && p->layers[l].kind == (g4_attn_kind)k) {
                g4_inv_freq(&p->layers[l], s->inv_freq[k]);
                break;
            }
}

void g4_model_free(g4_model *m) {
    g4_state *s = m->state;
    if (s) eft_free(s->layers);
    eft_free(s);
    eft_arena_free(&m->acts);
    eft_arena_free(&m->scratch);
    memset(m, 0, sizeof *m);
}

int64_t g4_model_bytes(const g4_model *m) {
    return (int64_t)(m->acts.cap + m->scratch.cap);
}

/* ---- forward ---------------------------------------------------------------------------- */

/* Documents start at every row start and wherever the position ids do not count on by one. */
static void find_documents(int32_t *doc_start, const g4_batch *b) {
    int r = 0;
    for (int t = 0; t < b->N; t++) {
        bool row_start = t == 0;
        if (b->row_start)
            while (r < b->rows && b->row_start[r] <= t) row_start |= b->row_start[r++] == t;
        doc_start[t] = row_start || b->pos[t] != b->pos[t - 1] + 1 ? t : doc_start[t - 1];
    }
}

/* The layer's full forward state: its own (no recompute) or the replay set aimed at its kept
 * input and K/V. */
static g4_layer_acts *layer_state(g4_model *m, int l) {
    g4_state *s = m->state;
    if (!m->recompute) return &s->layers[l];
    const g4_layer *y = &m->plan->layers[l];
    g4_layer_acts *r = &s->replay;
    r->h_in = s->layers[l].h_in;
    if (y->kv_shared) {
        r->k = s->layers[y->kv_donor].k;
        r->v = s->layers[y->kv_donor].v;
    } else if (y->stores_kv) {
        r->k = s->layers[l].k;
        r->v = s->layers[l].v;
    } else {
        r->k = s->replay_k;
        r->v = s->replay_v;
    }
    return r;
}

static void embed_forward(g4_model *m, const g4_batch *b) {
    const g4_plan *p = m->plan;
    const g4_weights *w = m->w;
    g4_state *s = m->state;
    int N = b->N;
    float *h0 = s->layers[0].h_in;
    ops_embedding_forward(h0, b->ids, w->embed->w, N, (int)p->V, (int)p->H, p->embed_scale);
    if (!p->P) return;
    /* Per-layer inputs: (norm(h0 W_plmᵀ · H^-1/2) + E_ple[ids] · sqrt(P)) · 2^-1/2. */
    int64_t LP = (int64_t)p->L * p->P;
    size_t mark = eft_arena_mark(&m->scratch);
    float *normed = eft_arena_alloc(&m->scratch, (size_t)N * LP * sizeof(float));
    float *tmp =
        w->ple_model_proj->lora
            ? eft_arena_alloc(&m->scratch, (size_t)N * w->ple_model_proj->lora->r * sizeof(float))
            : NULL;
    ops_embedding_forward(s->ple, b->ids, w->ple_table->w, N,
                          (int)p->cfg->vocab_size_per_layer_input, (int)LP, p->ple_embed_scale);
    g4_lin_forward(m, w->ple_model_proj, s->ple_ctx, h0, N, s->ple_xa, tmp);
    ops_scale_forward(s->ple_ctx, s->ple_ctx, (float)pow((double)p->H, -0.5), (size_t)N * LP);
    ops_rmsnorm_forward(normed, s->rstd_ple_ctx, s->ple_ctx, w->ple_proj_norm->f32, N * p->L,
                        (int)p->P, (float)p->cfg->rms_norm_eps);
    float c = (float)sqrt(0.5);
    for (size_t i = 0; i < (size_t)N * LP; i++) s->ple[i] = (normed[i] + s->ple[i]) * c;
    eft_arena_reset(&m->scratch, mark);
}

double g4_forward(g4_model *m, const g4_batch *b, int64_t *count) {
    const g4_plan *p = m->plan;
    g4_state *s = m->state;
    assert(b->N > 0 && b->N <= m->max_tokens);
    s->N = b->N;
    find_documents(s->doc_start, b);
    for (int k = 0; k < G4_NATTN_KINDS; k++)
        if (s->inv_freq[k]) {
            int half = 0;
            for (int l = 0; l < p->L; l++)
                if (p->layers[l].kind == (g4_attn_kind)k) half = p->layers[l].head_dim / 2;
            ops_rope_table(s->cos[k], s->sin[k], b->pos, s->inv_freq[k], b->N, half);
        }
    embed_forward(m, b);
    for (int l = 0; l < p->L; l++) {
        g4_layer_acts *a = layer_state(m, l);
        float *h_out = l + 1 < p->L ? s->layers[l + 1].h_in : s->h_final;
        g4_layer_forward(m, l, a, h_out);
    }
    const g4_weights *w = m->w;
    const g4_param *head = head_of(w);
    ops_rmsnorm_forward(s->x_final, s->rstd_final, s->h_final, w->final_norm->f32, b->N, (int)p->H,
                        (float)p->cfg->rms_norm_eps);
    return ops_lmhead_ce_forward(s->token_lse, count, s->x_final, head->w, b->target, b->N,
                                 (int)p->H, (int)p->V, p->cfg->final_logit_softcapping, s->kernel,
                                 s->kernel_bytes);
}

/* ---- backward --------------------------------------------------------------------------- */

/* From the per-layer inputs' gradient back into h0 (dh0) and the PLE tensors. */
static void ple_backward(g4_model *m, const g4_batch *b, float *dh0) {
    const g4_plan *p = m->plan;
    const g4_weights *w = m->w;
    g4_state *s = m->state;
    int N = b->N;
    int64_t LP = (int64_t)p->L * p->P;
    size_t mark = eft_arena_mark(&m->scratch);
    float *d_in = eft_arena_alloc(&m->scratch, (size_t)N * LP * sizeof(float));
    float *d_ctx = eft_arena_alloc(&m->scratch, (size_t)N * LP * sizeof(float));
    float c = (float)sqrt(0.5);
    for (size_t i = 0; i < (size_t)N * LP; i++) d_in[i] = s->d_ple[i] * c;
    if (w->ple_table->grad)
        ops_embedding_backward(w->ple_table->grad, d_in, b->ids, N,
                               (int)p->cfg->vocab_size_per_layer_input, (int)LP, p->ple_embed_scale,
                               (int32_t)p->cfg->pad_token_id);
    if (dh0 || g4_param_trained(w->ple_model_proj) || w->ple_proj_norm->grad) {
        Z(d_ctx, N * LP);
        ops_rmsnorm_backward(d_ctx, w->ple_proj_norm->grad, d_in, s->ple_ctx, w->ple_proj_norm->f32,
                             s->rstd_ple_ctx, N * p->L, (int)p->P);
        ops_scale_forward(d_ctx, d_ctx, (float)pow((double)p->H, -0.5), (size_t)N * LP);
        g4_bwd_tmp t = {0};
        if (w->ple_model_proj->lora) {
            size_t nr = (size_t)N * w->ple_model_proj->lora->r * sizeof(float);
            t.lora_x = eft_arena_alloc(&m->scratch, nr);
            t.lora_d = eft_arena_alloc(&m->scratch, nr);
        }
        g4_lin_backward(m, w->ple_model_proj, dh0, d_ctx, s->layers[0].h_in, N, s->ple_xa, t.lora_x,
                        t.lora_d);
    }
    eft_arena_reset(&m->scratch, mark);
}

void g4_backward(g4_model *m, const g4_batch *b, double grad_scale) {
    const g4_plan *p = m->plan;
    const g4_weights *w = m->w;
    g4_state *s = m->state;
    int N = b->N;
    int64_t H = p->H;
    assert(N == s->N);
    for (int k = 0; k < G4_NATTN_KINDS; k++)
        for (int j = 0; j < 2; j++)
            if (s->dkv[k][j]) {
                for (int l = 0; l < p->L; l++)
                    if (p->layers[l].stores_kv && p->layers[l].kind == (g4_attn_kind)k)
                        Z(s->dkv[k][j], (int64_t)N * p->layers[l].n_kv * p->layers[l].head_dim);
            }
    if (s->d_ple) Z(s->d_ple, (int64_t)N * p->L * p->P);

    /* Loss and final norm. */
    const g4_param *head = head_of(w);
    size_t mark = eft_arena_mark(&m->scratch);
    float *dx = eft_arena_alloc(&m->scratch, (size_t)N * H * sizeof(float));
    Z(dx, N * H);
    ops_lmhead_ce_backward(dx, head->grad, s->x_final, head->w, b->target, s->token_lse, N, (int)H,
                           (int)p->V, p->cfg->final_logit_softcapping, grad_scale, s->kernel,
                           s->kernel_bytes);
    Z(s->dh, N * H);
    ops_rmsnorm_backward(s->dh, w->final_norm->grad, dx, s->h_final, w->final_norm->f32,
                         s->rstd_final, N, (int)H);
    eft_arena_reset(&m->scratch, mark);

    for (int l = p->L - 1; l >= 0; l--) {
        g4_layer_acts *a = layer_state(m, l);
        if (m->recompute) {
            float *h_out = eft_arena_alloc(&m->scratch, (size_t)N * H * sizeof(float));
            g4_layer_forward(m, l, a, h_out);
        }
        g4_layer_backward(m, l, a, s->dh);
        eft_arena_reset(&m->scratch, mark);
    }

    /* Into the embeddings: the lookup (row pad_id excluded) and the PLE path. */
    bool embed_trained = w->embed->grad != NULL;
    if (p->P) ple_backward(m, b, embed_trained ? s->dh : NULL);
    if (embed_trained)
        ops_embedding_backward(w->embed->grad, s->dh, b->ids, N, (int)p->V, (int)H, p->embed_scale,
                               (int32_t)p->cfg->pad_token_id);
}

void g4_logits(g4_model *m, const g4_batch *b, float *out) {
    const g4_plan *p = m->plan;
    g4_state *s = m->state;
    const g4_param *head = head_of(m->w);
    ops_linear_forward(out, s->x_final, head->w, b->N, (int)p->H, (int)p->V, false, s->kernel,
                       s->kernel_bytes);
    double cap = p->cfg->final_logit_softcapping;
    if (cap > 0)
        for (size_t i = 0; i < (size_t)b->N * p->V; i++) out[i] = (float)(cap * tanh(out[i] / cap));
}

void g4_token_logits(g4_model *m, int t, float *out) {
    const g4_plan *p = m->plan;
    g4_state *s = m->state;
    assert(t >= 0 && t < s->N);
    const g4_param *head = head_of(m->w);
    ops_linear_forward(out, s->x_final + (size_t)t * p->H, head->w, 1, (int)p->H, (int)p->V, false,
                       s->kernel, s->kernel_bytes);
    double cap = p->cfg->final_logit_softcapping;
    if (cap > 0)
        for (int64_t i = 0; i < p->V; i++) out[i] = (float)(cap * tanh(out[i] / cap));
}
