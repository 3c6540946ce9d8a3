/* g4_plan.c: the per-layer plan of the Gemma 4 text model, and RoPE frequencies (g4_plan.h).
 *
 * The config has already been checked (g4_config.c): heads divide, every shared layer has a
 * donor, each layer type has one shape. What is left here is derivation.
 */
#include "model/g4_plan.h"

#include "base/err.h"
#include "base/half.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* The donor of a KV-shared layer: the last layer before `first` with the same type
 * (transformers' kv_sharing_modes; spec section 2.3). */
static int donor_of(const g4_config *c, int first, g4_attn_kind kind) {
    for (int j = first - 1; j >= 0; j--)
        if (c->layer_types[j] == kind) return j;
    return -1;
}

void g4_plan_build(g4_plan *p, const g4_config *c) {
    memset(p, 0, sizeof *p);
    p->cfg = c;
    p->L = c->num_hidden_layers;
    p->H = c->hidden_size;
    p->V = c->vocab_size;
    p->nH = c->num_attention_heads;
    p->P = c->hidden_size_per_layer_input;
    p->first_kv_shared = p->L - c->num_kv_shared_layers;
    p->embed_scale = eft_round_bf16(sqrtf((float)p->H));
    p->ple_embed_scale = p->P ? eft_round_bf16(sqrtf((float)p->P)) : 0.0f;
    p->layers = eft_calloc((size_t)p->L, sizeof *p->layers);

    for (int l = 0; l < p->L; l++) {
        g4_layer *y = &p->layers[l];
        g4_attn_kind kind = c->layer_types[l];
        const g4_rope *rope = &c->rope[kind];
        y->index = l;
        y->kind = kind;
        y->head_dim = c->layer_head_dim[l];
        y->n_kv = c->layer_num_kv[l];
        y->k_eq_v = c->attention_k_eq_v && kind == G4_ATTN_FULL;
        assert(y->n_kv > 0 && c->num_attention_heads % y->n_kv == 0);
        y->n_rep = c->num_attention_heads / y->n_kv;
        y->window = kind == G4_ATTN_SLIDING ? (int)c->sliding_window : 0;

        y->rope_type = rope->type;
        y->rope_theta = rope->theta;
        y->rope_factor = rope->type == G4_ROPE_PROPORTIONAL ? rope->factor : 1.0;
        /* Python's int(factor * D // 2): floor of a float product, halved. */
        y->rope_pairs = rope->type == G4_ROPE_PROPORTIONAL
                            ? (int)floor(rope->partial_rotary_factor * y->head_dim / 2.0)
                            : y->head_dim / 2;

        y->kv_shared = l >= p->first_kv_shared;
        y->kv_donor = y->kv_shared ? donor_of(c, p->first_kv_shared, kind) : -1;
        assert(!y->kv_shared || y->kv_donor >= 0);
        y->mlp_width = c->intermediate_size * (c->use_double_wide_mlp && y->kv_shared ? 2 : 1);
        y->ple = p->P > 0;
        y->moe = c->enable_moe_block;

        p->max_head_dim = EFT_MAX(p->max_head_dim, y->head_dim);
        p->max_mlp_width = EFT_MAX(p->max_mlp_width, y->mlp_width);
    }
    for (int l = p->first_kv_shared; l < p->L; l++)
        p->layers[p->layers[l].kv_donor].stores_kv = true;
}

void g4_plan_free(g4_plan *p) {
    eft_free(p->layers);
    memset(p, 0, sizeof *p);
}

void g4_inv_freq(const g4_layer *y, float *out) {
    int half = y->head_dim / 2;
    for (int i = 0; i < half; i++) {
        if (i >= y->rope_pairs) {
            out[i] = 0.0f;
            continue;
        }
        /* transformers: arange(0, 2n, 2).float() / D, then base ** that, then 1.0 / it, all fp32.
         */
        float e = (float)(2 * i) / (float)y->head_dim;
        float v = 1.0f / powf((float)y->rope_theta, e);
        out[i] = v / (float)y->rope_factor;
    }
}
