/* g4_init.c: the tiny presets and random checkpoints (see g4_init.h). */
#include "model/g4_init.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"
#include "base/half.h"
#include "base/rng.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/g4_desc.h"
#include "model/g4_plan.h"
#include "model/g4_weights.h"

#include <string.h>

/* Dimensions are chosen so that no two of H, nH*D, nKV*D and I coincide: a transposed index
 * then reads the wrong extent and a test fails instead of passing by luck. */
const g4_preset g4_presets[] = {
    /* name        mirrors  uni  V    H   I   L   nH nKV D  Dg gKV k=v  every W  P  shr dbl
       E  K  Ie */
    {"tiny-e2b", "E2B", false, 128, 16, 24, 10, 4, 1, 6, 12, 0, false, 5, 5, 4, 5, true, 0, 0, 0},
    {"tiny-e4b", "E4B", false, 128, 16, 24, 12, 4, 2, 6, 12, 0, false, 6, 5, 4, 4, false, 0, 0, 0},
    {"tiny-12b", "12B", true, 128, 16, 24, 6, 4, 2, 6, 12, 1, true, 6, 5, 0, 0, false, 0, 0, 0},
    {"tiny-31b", "31B", false, 128, 16, 24, 6, 8, 4, 6, 12, 2, true, 6, 5, 0, 0, false, 0, 0, 0},
    {"tiny-26b-a4b", "26B-A4B", false, 128, 16, 24,    6, 4, 2, 6, 12, 1,
     true,           6,         5,     0,   0,  false, 4, 2, 8},
    /* 31B-shaped at ~125M parameters: the speed benchmark's model (bench/bench_model.sh). */
    {"bench-31b", "31B", false, 32768, 1024, 4096, 6,     8, 4, 128, 256,
     1,           true,  6,     512,   0,    0,    false, 0, 0, 0},
    /* 26B-A4B-shaped at ~150M parameters (32 experts, top 4): the MoE speed benchmark's model. */
    {"bench-26b-a4b", "26B-A4B", false, 32768, 1024, 768, 6, 8, 4, 128, 256,
     1,               true,      6,     512,   0,    0,   false, 32, 4, 256},
    /* The demo's model: 31B-shaped, big enough to learn a small task on a laptop CPU. */
    {"demo-31b", "31B", false, 512, 144, 384, 4,     4, 2, 32, 64,
     1,          true,  4,     64,  0,   0,   false, 0, 0, 0},
    {NULL, NULL, false, 0, 0, 0, 0, 0, 0, 0, 0, 0, false, 0, 0, 0, 0, false, 0, 0, 0},
};

const g4_preset *g4_preset_find(const char *name) {
    for (const g4_preset *p = g4_presets; p->name; p++)
        if (!strcmp(p->name, name)) return p;
    return NULL;
}

static void text_config(eft_buf *b, const g4_preset *p, bool text_only, int V) {
    eft_buf_printf(b, "{\n    \"model_type\": \"%s\",\n",
                   p->unified ? "gemma4_unified_text" : "gemma4_text");
    if (text_only)
        eft_buf_printf(b, "    \"architectures\": [\"%s\"],\n",
                       p->unified ? "Gemma4UnifiedForCausalLM" : "Gemma4ForCausalLM");
    eft_buf_printf(b,
                   "    \"vocab_size\": %d,\n    \"hidden_size\": %d,\n"
                   "    \"intermediate_size\": %d,\n    \"num_hidden_layers\": %d,\n"
                   "    \"num_attention_heads\": %d,\n    \"num_key_value_heads\": %d,\n"
                   "    \"head_dim\": %d,\n    \"global_head_dim\": %d,\n",
                   V, p->hidden, p->intermediate, p->layers, p->heads, p->kv_heads, p->head_dim,
                   p->global_head_dim);
    if (p->global_kv_heads)
        eft_buf_printf(b, "    \"num_global_key_value_heads\": %d,\n", p->global_kv_heads);
    eft_buf_printf(b, "    \"attention_k_eq_v\": %s,\n", p->k_eq_v ? "true" : "false");
    eft_buf_puts(b, "    \"layer_types\": [");
    for (int l = 0; l < p->layers; l++)
        eft_buf_printf(b, "%s\"%s\"", l ? ", " : "",
                       (l + 1) % p->full_every == 0 || l == p->layers - 1 ? "full_attention"
                                                                          : "sliding_attention");
    eft_buf_printf(b,
                   "],\n    \"sliding_window\": %d,\n"
                   "    \"rope_parameters\": {\"sliding_attention\": {\"rope_type\": \"default\", "
                   "\"rope_theta\": 10000.0}, \"full_attention\": {\"rope_type\": "
                   "\"proportional\", \"partial_rotary_factor\": 0.25, \"rope_theta\": "
                   "1000000.0}},\n"
                   "    \"final_logit_softcapping\": 30.0,\n"
                   "    \"hidden_activation\": \"gelu_pytorch_tanh\",\n"
                   "    \"max_position_embeddings\": 4096,\n    \"rms_norm_eps\": 1e-06,\n"
                   "    \"initializer_range\": 0.02,\n"
                   "    \"pad_token_id\": 0, \"bos_token_id\": 2, \"eos_token_id\": 1,\n"
                   "    \"tie_word_embeddings\": true",
                   p->window);
    if (!p->unified)
        eft_buf_printf(b,
                       ",\n    \"hidden_size_per_layer_input\": %d,\n"
                       "    \"vocab_size_per_layer_input\": %d,\n"
                       "    \"num_kv_shared_layers\": %d,\n    \"use_double_wide_mlp\": %s,\n"
                       "    \"enable_moe_block\": %s",
                       p->ple_dim, V, p->kv_shared, p->double_wide ? "true" : "false",
                       p->experts ? "true" : "false");
    if (p->experts)
        eft_buf_printf(b,
                       ",\n    \"num_experts\": %d,\n    \"top_k_experts\": %d,\n"
                       "    \"moe_intermediate_size\": %d",
                       p->experts, p->top_k, p->expert_intermediate);
    eft_buf_puts(b, "\n}");
}

char *g4_preset_config_json(const g4_preset *p, bool text_only, int vocab_override) {
    int V = vocab_override > 0 ? vocab_override : p->vocab;
    eft_buf b = {0};
    if (text_only) {
        text_config(&b, p, true, V);
        eft_buf_puts(&b, "\n");
        return eft_buf_take(&b);
    }
    eft_buf_printf(&b,
                   "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n"
                   "  \"tie_word_embeddings\": true,\n  \"eos_token_id\": [1, 106],\n"
                   "  \"vision_config\": null,\n  \"audio_config\": null,\n  \"text_config\": ",
                   p->unified ? "Gemma4UnifiedForConditionalGeneration"
                              : "Gemma4ForConditionalGeneration",
                   p->unified ? "gemma4_unified" : "gemma4");
    text_config(&b, p, false, V);
    eft_buf_puts(&b, "\n}\n");
    return eft_buf_take(&b);
}

typedef struct init_ctx {
    uint64_t seed;
    double std;
    int64_t pad;
} init_ctx;

/* Each tensor draws from its own stream (named by the tensor), so adding a tensor never shifts
 * another's values. */
static void init_param(const g4_param *par, float *out, void *vctx) {
    const init_ctx *c = vctx;
    const g4_tensor *t = par->t;
    eft_rng r;
    eft_rng_seed(&r, c->seed, eft_rng_stream_of(t->name));
    if (t->group == G4_GROUP_BUFFER) { /* layer_scalar */
        for (int64_t i = 0; i < t->numel; i++) out[i] = (float)(0.5 + eft_rng_uniform(&r));
        return;
    }
    bool ones = t->group == G4_GROUP_NORMS || strstr(t->name, "router.scale") ||
                strstr(t->name, "router.per_expert_scale");
    /* router.proj draws std 1: its input has rms H^-1/2, so the expert scores spread by about 1,
     * decisive like a trained router's. With the initializer's 0.02 they would be all but equal
     * and fp32 rounding alone could choose between experts (in the golden tests, between eft and
     * transformers). */
    double std = strstr(t->name, "router.proj") ? 1.0 : c->std;
    for (int64_t i = 0; i < t->numel; i++) out[i] = ones ? 1.0f : (float)(std * eft_rng_normal(&r));
    /* nn.Embedding(padding_idx=pad): the pad row starts at zero. */
    if ((strstr(t->name, "embed_tokens.weight") || strstr(t->name, "embed_tokens_per_layer")) &&
        c->pad >= 0 && c->pad < t->shape[0])
        memset(out + c->pad * t->shape[1], 0, (size_t)t->shape[1] * sizeof(float));
}

int g4_init_checkpoint(const g4_preset *p, const char *out_dir, uint64_t seed, bool text_only,
                       int vocab_override) {
    if (eft_mkdirs(out_dir)) return -1;
    char *json = g4_preset_config_json(p, text_only, vocab_override);
    char *cfg_path = eft_path_join(out_dir, "config.json");
    int rc = eft_write_file_atomic(cfg_path, json, strlen(json));
    g4_desc d;
    if (!rc) rc = g4_desc_parse(&d, json, cfg_path);
    eft_free(json);
    eft_free(cfg_path);
    if (rc) return -1;
    const g4_tensors *ts = &d.ts;
    g4_weights w;
    init_ctx ctx = {seed, d.cfg.initializer_range, d.cfg.pad_token_id};
    g4_weights_alloc(&w, &d.plan, &d.ts, false, init_param, &ctx);

    st_writer *wr = st_writer_new();
    uint16_t **bf = eft_calloc((size_t)ts->n, sizeof *bf);
    for (int i = 0; i < ts->n; i++) {
        const g4_tensor *t = &ts->t[i];
        bf[i] = eft_malloc((size_t)t->numel * sizeof(uint16_t));
        eft_f32_to_bf16_n(bf[i], w.params[i].f32, (size_t)t->numel);
        st_writer_add(wr, t->name, ST_BF16, t->ndim, t->shape, bf[i]);
    }
    st_writer_meta(wr, "format", "pt");
    char *st_path = eft_path_join(out_dir, "model.safetensors");
    rc = st_writer_write(wr, st_path);
    eft_free(st_path);
    for (int i = 0; i < ts->n; i++) eft_free(bf[i]);
    eft_free(bf);
    st_writer_free(wr);
    g4_weights_free(&w);
    g4_desc_free(&d);
    return rc;
}
