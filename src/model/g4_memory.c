/* g4_memory.c: the memory plan of a Gemma 4 training run (g4_memory.h).
 *
 * The activation lists below are the contract with the forward/backward code: without
 * recompute, the forward of layer l keeps exactly the tensors g4_layer_saved lists (fp32, or
 * int32 for expert indices), and the backward reads them. The rule used to choose them, for a
 * CPU backend computing in fp32: keep every tensor a backward GEMM, norm or attention kernel
 * reads, except products that are one elementwise step from kept tensors (gelu(gate) * up is
 * re-made from gate and up, in the dense MLP and in the experts). With recompute, a layer keeps
 * only its input h_in (plus, for a KV donor, the K/V its shared layers read) and re-runs its
 * forward during its backward, holding one layer's full set at a time.
 */
#include "model/g4_memory.h"

#include "base/err.h"
#include "base/threads.h"

#include <assert.h>
#include <string.h>

unsigned g4_target_bit(g4_linear k) {
    switch (k) {
    case G4_LIN_Q:
        return G4_TARGET_Q;
    case G4_LIN_K:
        return G4_TARGET_K;
    case G4_LIN_V:
        return G4_TARGET_V;
    case G4_LIN_O:
        return G4_TARGET_O;
    case G4_LIN_GATE:
        return G4_TARGET_GATE;
    case G4_LIN_UP:
        return G4_TARGET_UP;
    case G4_LIN_DOWN:
        return G4_TARGET_DOWN;
    case G4_LIN_EXPERTS_GATE_UP:
    case G4_LIN_EXPERTS_DOWN:
        return G4_TARGET_EXPERTS;
    default:
        return 0;
    }
}

void g4_run_shape_default(g4_run_shape *s) {
    *s = (g4_run_shape){
        .seq_len = 2048,
        .micro_batch = 1,
        .weights = G4_WEIGHTS_BF16,
        .train = G4_TRAIN_LORA,
        .lora_r = 16,
        .lora_targets = G4_TARGET_LINEAR,
        .optim = G4_OPTIM_ADAMW,
        .threads = eft_threads(),
    };
}

typedef struct list {
    g4_saved *v;
    int n;
} list;

static void put(list *a, const char *name, const char *shape, int64_t elems) {
    assert(a->n < G4_SAVED_MAX);
    a->v[a->n++] = (g4_saved){name, shape, elems};
}

static int64_t cdiv(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

/* LoRA's x·Aᵀ ([N, r]; [N·K, r] for experts), kept for B's gradient, per targeted module. */
static void put_lora(list *a, const g4_run_shape *s, const g4_layer *y, int64_t N, int64_t NK) {
    static const struct {
        g4_linear kind;
        const char *name;
    } mods[] = {
        {G4_LIN_Q, "lora_xa.q_proj"},
        {G4_LIN_K, "lora_xa.k_proj"},
        {G4_LIN_V, "lora_xa.v_proj"},
        {G4_LIN_O, "lora_xa.o_proj"},
        {G4_LIN_GATE, "lora_xa.gate_proj"},
        {G4_LIN_UP, "lora_xa.up_proj"},
        {G4_LIN_DOWN, "lora_xa.down_proj"},
        {G4_LIN_EXPERTS_GATE_UP, "lora_xa.experts.gate_up"},
        {G4_LIN_EXPERTS_DOWN, "lora_xa.experts.down"},
    };
    if (s->train != G4_TRAIN_LORA) return;
    for (size_t i = 0; i < EFT_ARRAY_LEN(mods); i++) {
        g4_linear k = mods[i].kind;
        bool present = (k != G4_LIN_K && k != G4_LIN_V) || !y->kv_shared;
        present &= k != G4_LIN_V || !y->k_eq_v;
        present &= (k != G4_LIN_EXPERTS_GATE_UP && k != G4_LIN_EXPERTS_DOWN) || y->moe;
        if (present && (g4_target_bit(k) & s->lora_targets)) {
            bool expert = k == G4_LIN_EXPERTS_GATE_UP || k == G4_LIN_EXPERTS_DOWN;
            put(a, mods[i].name, expert ? "[N*K, r]" : "[N, r]", (expert ? NK : N) * s->lora_r);
        }
    }
}

int g4_layer_saved(const g4_plan *p, const g4_run_shape *s, int l, g4_saved *out) {
    assert(l >= 0 && l < p->L);
    const g4_layer *y = &p->layers[l];
    list a = {out, 0};
    int64_t N = s->micro_batch * s->seq_len, H = p->H, nH = p->nH, D = y->head_dim;
    int64_t kv = y->n_kv, I = y->mlp_width;
    int64_t K = y->moe ? p->cfg->top_k_experts : 0;

    /* Attention block. */
    put(&a, "h_in", "[N, H]", N * H);    /* layer input: input_layernorm's input */
    put(&a, "rstd_attn_norm", "[N]", N); /* 1/rms of each row of h_in */
    put(&a, "x_attn", "[N, H]", N * H);  /* input_layernorm output: q/k/v projections' input */
    put(&a, "q_raw", "[N, nH*D]", N * nH * D); /* q_proj output: q_norm's input */
    put(&a, "rstd_q", "[N, nH]", N * nH);
    put(&a, "q", "[N, nH, D]", N * nH * D); /* after q_norm and RoPE: attention's queries */
    if (!y->kv_shared) {
        put(&a, "k_raw", "[N, nKV*D]", N * kv * D); /* k_proj output: k_norm's (and, with k_eq_v,
                                                       v_norm's) input */
        if (!y->k_eq_v) put(&a, "v_raw", "[N, nKV*D]", N * kv * D); /* v_proj output */
        put(&a, "rstd_k", "[N, nKV]", N * kv);
        put(&a, "rstd_v", "[N, nKV]", N * kv);
        put(&a, "k", "[N, nKV, D]", N * kv * D); /* after k_norm and RoPE; also read by the */
        put(&a, "v", "[N, nKV, D]", N * kv * D); /* shared layers when this layer is a donor */
    }
    put(&a, "attn_out", "[N, nH*D]", N * nH * D); /* softmax(qkᵀ)v: o_proj's input */
    put(&a, "lse", "[nH, N]", nH * N);            /* log-sum-exp of each query's scores */
    put(&a, "attn_proj", "[N, H]", N * H); /* o_proj output: post_attention_layernorm's input */
    put(&a, "rstd_post_attn", "[N]", N);

    /* MLP block (dense MLP in every model; the experts beside it in MoE models). */
    put(&a, "h_mid", "[N, H]",
        N * H); /* residual after attention: the FFN norms' and router's input */
    put(&a, "rstd_pre_ffw", "[N]", N);
    put(&a, "x_mlp", "[N, H]", N * H);   /* pre_feedforward_layernorm output: gate/up input */
    put(&a, "gate", "[N, I]", N * I);    /* gate_proj and up_proj outputs; gelu(gate)*up, */
    put(&a, "up", "[N, I]", N * I);      /* down_proj's input, is re-made in the backward */
    put(&a, "mlp_out", "[N, H]", N * H); /* down_proj output */
    if (y->moe) {
        int64_t Ie = p->cfg->moe_intermediate_size;
        put(&a, "rstd_post_ffw_1", "[N]", N); /* post_feedforward_layernorm_1 of mlp_out */
        put(&a, "rstd_router", "[N]", N);
        put(&a, "router_x", "[N, H]", N * H); /* norm(h_mid)*scale*H^-1/2: router.proj's input */
        put(&a, "topk_idx", "[N, K] int32", N * K);
        put(&a, "topk_w", "[N, K]",
            N * K); /* renormalised top-k weights, before per_expert_scale */
        put(&a, "rstd_pre_ffw_2", "[N]", N);
        put(&a, "x_moe", "[N, H]", N * H); /* pre_feedforward_layernorm_2 output: experts' input */
        put(&a, "expert_gate_up", "[N*K, 2*I_e]", N * K * 2 * Ie); /* per (token, slot) */
        put(&a, "moe_out", "[N, H]", N * H); /* weighted expert sum: post_ffw_layernorm_2's input */
        put(&a, "rstd_post_ffw_2", "[N]", N);
        put(&a, "ffw_sum", "[N, H]", N * H); /* m1 + m2: post_feedforward_layernorm's input */
    }
    put(&a, "rstd_post_ffw", "[N]", N);

    /* Per-layer-embedding block (E2B, E4B). */
    if (y->ple) {
        put(&a, "h_ple", "[N, H]",
            N * H); /* residual after the FFN: per_layer_input_gate's input */
        put(&a, "ple_gate", "[N, P]", N * p->P); /* gate output, before gelu */
        put(&a, "ple_gated", "[N, P]",
            N * p->P); /* gelu(gate)*ple[:, l]: per_layer_projection's input */
        put(&a, "ple_proj", "[N, H]", N * H); /* post_per_layer_input_norm's input */
        put(&a, "rstd_ple", "[N]", N);
    }
    put_lora(&a, s, y, N, N * K);
    return a.n;
}

int g4_model_saved(const g4_plan *p, const g4_run_shape *s, g4_saved *out) {
    list a = {out, 0};
    int64_t N = s->micro_batch * s->seq_len, H = p->H, LP = (int64_t)p->L * p->P;
    put(&a, "input_ids", "[N] int32", N);
    put(&a, "labels", "[N] int32", N);
    put(&a, "position_ids", "[N] int32", N);
    if (p->P) {
        put(&a, "ple", "[N, L*P]",
            N * LP); /* (norm(ctx) + tok) * 2^-1/2: every layer's PLE input */
        put(&a, "ple_ctx", "[N, L*P]", N * LP); /* per_layer_model_projection(h0) * H^-1/2 */
        put(&a, "rstd_ple_ctx", "[N, L]", N * p->L);
    }
    put(&a, "h_final", "[N, H]", N * H); /* last layer's output: the final norm's input */
    put(&a, "rstd_final", "[N]", N);
    put(&a, "x_final", "[N, H]", N * H); /* final norm output: the LM head's input */
    put(&a, "token_lse", "[N]", N);      /* log-sum-exp of each token's soft-capped logits */
    return a.n;
}

int64_t g4_saved_bytes(const g4_saved *v, int n) {
    int64_t b = 0;
    for (int i = 0; i < n; i++) b += 4 * v[i].elems;
    return b;
}

static int64_t layer_full_bytes(const g4_plan *p, const g4_run_shape *s, int l) {
    g4_saved v[G4_SAVED_MAX];
    return g4_saved_bytes(v, g4_layer_saved(p, s, l, v));
}

int64_t g4_layer_kept_bytes(const g4_plan *p, const g4_run_shape *s, int l) {
    if (!s->recompute) return layer_full_bytes(p, s, l);
    const g4_layer *y = &p->layers[l];
    int64_t N = s->micro_batch * s->seq_len;
    int64_t b = 4 * N * p->H;                                 /* h_in */
    if (y->stores_kv) b += 2 * 4 * N * y->n_kv * y->head_dim; /* k, v for the shared layers */
    return b;
}

int64_t g4_nf4_bytes(int64_t n) {
    int64_t blocks = cdiv(n, 64);
    return cdiv(n, 2) + blocks + 4 * cdiv(blocks, 256);
}

bool g4_nf4_quantized(const g4_tensor *t, bool quantize_moe_experts) {
    return t->linear != G4_LIN_NONE && t->linear != G4_LIN_LM_HEAD &&
           (t->group != G4_GROUP_MOE_EXPERTS || quantize_moe_experts);
}

static int check_shape(const g4_plan *p, const g4_run_shape *s) {
    if (s->seq_len < 1 || s->micro_batch < 1)
        return eft_fail("sequence_len (%lld) and micro_batch_size (%lld) must be at least 1.",
                        (long long)s->seq_len, (long long)s->micro_batch);
    if (s->threads < 1) return eft_fail("the thread count must be at least 1.");
    if (s->train == G4_TRAIN_FULL && s->weights == G4_WEIGHTS_NF4)
        return eft_fail("load_in_4bit needs adapter: lora: NF4 weights cannot be fully "
                        "fine-tuned. Set adapter: lora, or drop load_in_4bit.");
    if (s->train == G4_TRAIN_LORA && s->lora_r < 1)
        return eft_fail("lora_r is %d; LoRA needs a rank of at least 1.", s->lora_r);
    (void)p;
    return 0;
}

/* Per-thread attention tiles, forward or backward (whichever is larger), fp32. */
static int64_t attn_tile_floats(int64_t D) {
    int64_t B = G4_MEM_ATTN_TILE;
    int64_t fwd = B * D + 2 * B * D + B * B + B * D + 2 * B; /* q, k, v, s, o acc, m, l */
    int64_t bwd = 3 * B * D + 4 * B * D + 2 * B * B + 2 * B; /* q dO dQ, k v dK dV, p dS, lse D */
    return fwd > bwd ? fwd : bwd;
}

/* Bytes of AdamW state for one trained tensor of n elements, as opt_adamw_state_bytes (src/train)
 * counts them: fp32 m and v, or where the 8-bit optimizers quantise the tensor
 * (training-math.md 5) one code per element and one fp32 scale per block, per moment. */
static int64_t optim_bytes(g4_optim o, int64_t n, bool embedding) {
    bool q8 = n >= G4_MEM_OPTIM_8BIT_MIN &&
              ((o == G4_OPTIM_ADAMW_8BIT && !embedding) ||
               (o == G4_OPTIM_ADAMW_8BIT_TORCHAO && n % G4_MEM_OPTIM_8BIT_BLOCK == 0));
    return q8 ? 2 * n + 2 * 4 * cdiv(n, G4_MEM_OPTIM_8BIT_BLOCK) : 8 * n;
}

/* An nn.Embedding's weight: bitsandbytes' 8-bit AdamW keeps its state in 32 bits. */
static bool is_embedding(const g4_tensor *t) {
    static const char *const tails[] = {".embed_tokens.weight", ".embed_tokens_per_layer.weight"};
    size_t n = strlen(t->name);
    for (size_t i = 0; i < EFT_ARRAY_LEN(tails); i++) {
        size_t k = strlen(tails[i]);
        if (n >= k && !strcmp(t->name + n - k, tails[i])) return true;
    }
    return false;
}

int g4_memory_plan(const g4_plan *p, const g4_tensors *ts, const g4_run_shape *s, g4_memory *m) {
    memset(m, 0, sizeof *m);
    if (check_shape(p, s)) return -1;
    bool full = s->train == G4_TRAIN_FULL;
    int64_t max_linear = 0; /* elements of the largest linear map (one map of an expert tensor) */
    for (int i = 0; i < ts->n; i++) {
        const g4_tensor *t = &ts->t[i];
        bool buffer = t->group == G4_GROUP_BUFFER;
        if (t->linear) max_linear = EFT_MAX(max_linear, t->in * t->out);
        if (full) {
            m->weights += (buffer ? 2 : 4) * t->numel; /* buffers stay bf16, untrained */
            if (!buffer) m->trainable += t->numel;
            if (!buffer) m->optim += optim_bytes(s->optim, t->numel, is_embedding(t));
            continue;
        }
        bool nf4 = s->weights == G4_WEIGHTS_NF4 && g4_nf4_quantized(t, s->quantize_moe_experts);
        int64_t b = nf4 ? g4_nf4_bytes(t->numel) : 2 * t->numel;
        m->weights += b;
        if (nf4) m->weights_nf4 += b;
        if (g4_target_bit(t->linear) & s->lora_targets) {
            m->trainable += t->count * s->lora_r * (t->in + t->out);
            /* An expert tensor's adapter is one A [r*E, in] and one B [out, r*E] (peft/lora.h). */
            int64_t rows = t->count * s->lora_r;
            m->optim += optim_bytes(s->optim, rows * t->in, false) +
                        optim_bytes(s->optim, t->out * rows, false);
        }
    }
    if (!full && m->trainable == 0)
        return eft_fail("lora_target_modules matches no module of this model (KV-shared layers "
                        "have no k_proj/v_proj; only MoE models have experts). Target at least "
                        "one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.");
    m->adapter = full ? 0 : 4 * m->trainable;
    m->grads = 4 * m->trainable;

    /* Activations. */
    g4_saved v[G4_SAVED_MAX];
    m->act_model = g4_saved_bytes(v, g4_model_saved(p, s, v));
    int64_t full_max = 0;
    for (int l = 0; l < p->L; l++) {
        int64_t all = layer_full_bytes(p, s, l), kept = g4_layer_kept_bytes(p, s, l);
        m->act_layers += kept;
        full_max = EFT_MAX(full_max, all);
        m->act_replay = EFT_MAX(m->act_replay, all - kept);
    }
    if (!s->recompute) m->act_replay = 0;
    m->activations = m->act_model + m->act_layers + m->act_replay;

    /* Scratch: per-thread tiles, and the backward's working set. */
    int64_t N = s->micro_batch * s->seq_len, T = s->threads;
    m->scratch_attn = 4 * T * attn_tile_floats(p->max_head_dim);
    m->scratch_loss = 4 * T *
                      ((int64_t)G4_MEM_LOSS_TOKENS * G4_MEM_LOSS_VOCAB_TILE /* logits tile */
                       + (int64_t)G4_MEM_LOSS_TOKENS * p->H                 /* d x_final partial */
                       + 4 * G4_MEM_LOSS_TOKENS); /* max, sum, target, label */
    /* One fp32 slab of a frozen weight, widened by all threads together (ops linear.c). */
    m->scratch_gemm = full ? 0 : EFT_MIN((int64_t)G4_MEM_GEMM_SLAB_BYTES, 4 * max_linear);
    m->scratch_grad = 2 * 4 * N * p->H /* d residual: the current and the next */
                      + full_max;      /* gradients of one layer's kept tensors */
    for (int l = 0; l < p->L; l++) {
        const g4_layer *y = &p->layers[l];
        if (y->stores_kv) m->scratch_grad += 2 * 4 * N * y->n_kv * y->head_dim; /* dk, dv sums */
    }
    if (p->P) m->scratch_grad += 4 * N * p->L * p->P; /* d ple, filled layer by layer */
    m->scratch = m->scratch_attn + m->scratch_loss + m->scratch_gemm + m->scratch_grad;
    m->total = m->weights + m->adapter + m->grads + m->optim + m->activations + m->scratch;
    return 0;
}
