/* test_g4_plan.c: config.json reading, the layer plan, tensor shapes and parameter counts of
 * the five released Gemma 4 sizes (tests/data_files/gemma4/<size>/config.json), against
 * ../shared/spec/gemma4.md sections 2.3 and 8; and the config errors. */
#include "support/test.h"
#include "support/variant.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/json.h"
#include "model/g4_config.h"
#include "model/g4_plan.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* From config.json text (the test fails when it does not parse). */
static void variant_from_json(g4_desc *v, const char *json) {
    if (g4_desc_parse(v, json, "test/config.json")) fail_msg("%s", eft_err_msg());
}

/* The shape of a tensor by its name after the weight prefix; asserts it exists. */
static const g4_tensor *tensor(const g4_desc *v, const char *suffix) {
    char name[128];
    snprintf(name, sizeof name, "%s%s", v->cfg.weight_prefix, suffix);
    const g4_tensor *t = g4_tensors_find(&v->ts, name);
    if (!t) fail_msg("tensor %s is missing", name);
    return t;
}

static bool has_tensor(const g4_desc *v, const char *suffix) {
    char name[128];
    snprintf(name, sizeof name, "%s%s", v->cfg.weight_prefix, suffix);
    return g4_tensors_find(&v->ts, name) != NULL;
}

static void assert_shape2(const g4_tensor *t, int64_t a, int64_t b) {
    if (t->ndim != 2 || t->shape[0] != a || t->shape[1] != b)
        fail_msg("%s: shape [%lld, %lld] (ndim %d), expected [%lld, %lld]", t->name,
                 (long long)t->shape[0], (long long)t->shape[1], t->ndim, (long long)a,
                 (long long)b);
}

/* The spec's table (section 2.3) and concrete attention shapes (section 8). */
static const struct spec {
    const char *name;
    int L, period; /* full layers: (l + 1) % period == 0 */
    int nfull;
    int kv_sliding, kv_full;
    bool k_eq_v;
    int window;
    int64_t I;
    float embed_scale;
    bool ple, moe;
    /* q / k / v / o of a sliding and a full layer; v_full 0 when absent */
    int64_t q_s[2], k_s[2], v_s[2], o_s[2], q_f[2], k_f[2], v_f[2], o_f[2];
} specs[] = {
    {"e2b",
     35,
     5,
     7,
     1,
     1,
     false,
     512,
     6144,
     39.25f,
     true,
     false,
     {2048, 1536},
     {256, 1536},
     {256, 1536},
     {1536, 2048},
     {4096, 1536},
     {512, 1536},
     {512, 1536},
     {1536, 4096}},
    {"e4b",
     42,
     6,
     7,
     2,
     2,
     false,
     512,
     10240,
     50.5f,
     true,
     false,
     {2048, 2560},
     {512, 2560},
     {512, 2560},
     {2560, 2048},
     {4096, 2560},
     {1024, 2560},
     {1024, 2560},
     {2560, 4096}},
    {"12b",
     48,
     6,
     8,
     8,
     1,
     true,
     1024,
     15360,
     62.0f,
     false,
     false,
     {4096, 3840},
     {2048, 3840},
     {2048, 3840},
     {3840, 4096},
     {8192, 3840},
     {512, 3840},
     {0, 0},
     {3840, 8192}},
    {"26b-a4b",
     30,
     6,
     5,
     8,
     2,
     true,
     1024,
     2112,
     53.0f,
     false,
     true,
     {4096, 2816},
     {2048, 2816},
     {2048, 2816},
     {2816, 4096},
     {8192, 2816},
     {1024, 2816},
     {0, 0},
     {2816, 8192}},
    {"31b",
     60,
     6,
     10,
     16,
     4,
     true,
     1024,
     21504,
     73.5f,
     false,
     false,
     {8192, 5376},
     {4096, 5376},
     {4096, 5376},
     {5376, 8192},
     {16384, 5376},
     {2048, 5376},
     {0, 0},
     {5376, 16384}},
};

static void test_layer_plans(void **state) {
    for (size_t i = 0; i < EFT_ARRAY_LEN(specs); i++) {
        const struct spec *s = &specs[i];
        g4_desc v;
        variant_load(&v, s->name);
        const g4_plan *p = &v.plan;
        assert_int_equal(p->L, s->L);
        assert_true(v.cfg.wrapper);
        assert_string_equal(v.cfg.weight_prefix, "model.language_model.");
        int nfull = 0;
        for (int l = 0; l < p->L; l++) {
            const g4_layer *y = &p->layers[l];
            bool full = (l + 1) % s->period == 0;
            assert_int_equal(y->kind, full ? G4_ATTN_FULL : G4_ATTN_SLIDING);
            nfull += full;
            assert_int_equal(y->head_dim, full ? 512 : 256);
            assert_int_equal(y->n_kv, full ? s->kv_full : s->kv_sliding);
            assert_int_equal(y->k_eq_v, full && s->k_eq_v);
            assert_int_equal(y->n_rep * y->n_kv, p->nH);
            assert_int_equal(y->window, full ? 0 : s->window);
            assert_int_equal(y->rope_pairs, full ? 64 : 128);
            assert_true(y->rope_theta == (full ? 1e6 : 1e4));
            assert_int_equal(y->ple, s->ple);
            assert_int_equal(y->moe, s->moe);
            /* E2B doubles the MLP on its KV-shared layers 15-34, and only E2B does. */
            int64_t I = !strcmp(s->name, "e2b") && l >= 15 ? 2 * s->I : s->I;
            assert_int_equal(y->mlp_width, I);
        }
        assert_int_equal(nfull, s->nfull);
        assert_true(p->embed_scale == s->embed_scale);
        g4_desc_free(&v);
    }
}

/* Spec 2.3: E2B shares K/V on layers 15-34 (sliding ones read 13, full ones 14); E4B on 24-41
 * (22 and 23); the others not at all. */
static void test_kv_sharing(void **state) {
    static const struct {
        const char *name;
        int first, donor_sliding, donor_full;
    } cases[] = {
        {"e2b", 15, 13, 14},     {"e4b", 24, 22, 23}, {"12b", 48, -1, -1},
        {"26b-a4b", 30, -1, -1}, {"31b", 60, -1, -1},
    };
    for (size_t i = 0; i < EFT_ARRAY_LEN(cases); i++) {
        g4_desc v;
        variant_load(&v, cases[i].name);
        const g4_plan *p = &v.plan;
        assert_int_equal(p->first_kv_shared, cases[i].first);
        for (int l = 0; l < p->L; l++) {
            const g4_layer *y = &p->layers[l];
            assert_int_equal(y->kv_shared, l >= cases[i].first);
            int donor = !y->kv_shared                ? -1
                        : y->kind == G4_ATTN_SLIDING ? cases[i].donor_sliding
                                                     : cases[i].donor_full;
            assert_int_equal(y->kv_donor, donor);
            assert_int_equal(y->stores_kv, l == cases[i].donor_sliding || l == cases[i].donor_full);
        }
        g4_desc_free(&v);
    }
    /* The shared layers of E4B that are full: 29, 35, 41. */
    g4_desc v;
    variant_load(&v, "e4b");
    int full_shared[3], n = 0;
    for (int l = 24; l < 42; l++)
        if (v.plan.layers[l].kind == G4_ATTN_FULL) full_shared[n++] = l;
    assert_int_equal(n, 3);
    assert_int_equal(full_shared[0], 29);
    assert_int_equal(full_shared[1], 35);
    assert_int_equal(full_shared[2], 41);
    g4_desc_free(&v);
}

static void test_inv_freq(void **state) {
    g4_desc v;
    variant_load(&v, "31b");
    float f[256];
    /* A full layer: 64 rotating pairs with the exponent over the whole 512, then zeros. */
    const g4_layer *full = &v.plan.layers[5];
    assert_int_equal(full->kind, G4_ATTN_FULL);
    g4_inv_freq(full, f);
    for (int i = 0; i < 256; i++) {
        if (i < 64) {
            assert_true(f[i] > 0);
            assert_close(f[i], 1.0 / pow(1e6, 2.0 * i / 512.0), 1e-6);
        } else {
            assert_true(f[i] == 0.0f);
        }
    }
    assert_true(f[0] == 1.0f);
    /* Not the exponent over the 128 rotated dims (a common mistake): that would give
     * 1e6^(-2/128) = 0.805 for pair 1. */
    assert_close(f[1], 0.947463, 1e-5);
    /* A sliding layer: all 128 pairs, theta 1e4 over 256. */
    const g4_layer *sl = &v.plan.layers[0];
    g4_inv_freq(sl, f);
    for (int i = 0; i < 128; i++) assert_close(f[i], 1.0 / pow(1e4, 2.0 * i / 256.0), 1e-6);
    g4_desc_free(&v);
}

static void test_tensor_shapes(void **state) {
    char n[96];
    for (size_t i = 0; i < EFT_ARRAY_LEN(specs); i++) {
        const struct spec *s = &specs[i];
        g4_desc v;
        variant_load(&v, s->name);
        int ls = 0, lf = s->period - 1; /* a sliding and a full layer that compute their K/V */
        struct {
            int l;
            const char *proj;
            const int64_t *shape;
        } rows[] = {
            {ls, "q_proj", s->q_s}, {ls, "k_proj", s->k_s}, {ls, "v_proj", s->v_s},
            {ls, "o_proj", s->o_s}, {lf, "q_proj", s->q_f}, {lf, "k_proj", s->k_f},
            {lf, "v_proj", s->v_f}, {lf, "o_proj", s->o_f},
        };
        for (size_t r = 0; r < EFT_ARRAY_LEN(rows); r++) {
            snprintf(n, sizeof n, "layers.%d.self_attn.%s.weight", rows[r].l, rows[r].proj);
            if (rows[r].shape[0] == 0) {
                assert_false(has_tensor(&v, n)); /* k_eq_v: no v_proj */
                continue;
            }
            const g4_tensor *t = tensor(&v, n);
            assert_shape2(t, rows[r].shape[0], rows[r].shape[1]);
            assert_int_equal(t->out, rows[r].shape[0]);
            assert_int_equal(t->in, rows[r].shape[1]);
            assert_int_equal(t->group, G4_GROUP_ATTENTION);
        }
        /* Every layer of the same kind has the same attention shapes. */
        for (int l = 0; l < v.plan.L; l++) {
            const g4_layer *y = &v.plan.layers[l];
            snprintf(n, sizeof n, "layers.%d.self_attn.q_proj.weight", l);
            assert_shape2(tensor(&v, n), y->kind == G4_ATTN_FULL ? s->q_f[0] : s->q_s[0], v.plan.H);
            snprintf(n, sizeof n, "layers.%d.self_attn.k_proj.weight", l);
            assert_int_equal(has_tensor(&v, n), !y->kv_shared);
            snprintf(n, sizeof n, "layers.%d.self_attn.k_norm.weight", l);
            assert_int_equal(has_tensor(&v, n), !y->kv_shared);
            snprintf(n, sizeof n, "layers.%d.mlp.down_proj.weight", l);
            assert_shape2(tensor(&v, n), v.plan.H, y->mlp_width);
        }
        assert_int_equal(has_tensor(&v, "embed_tokens_per_layer.weight"), s->ple);
        assert_int_equal(has_tensor(&v, "layers.0.experts.gate_up_proj"), s->moe);
        assert_null(g4_tensors_find(&v.ts, "lm_head.weight")); /* tied */
        g4_desc_free(&v);
    }
}

static void test_tensor_details(void **state) {
    g4_desc v;
    variant_load(&v, "e2b");
    assert_shape2(tensor(&v, "embed_tokens_per_layer.weight"), 262144, 8960);
    assert_shape2(tensor(&v, "per_layer_model_projection.weight"), 8960, 1536);
    assert_shape2(tensor(&v, "layers.0.mlp.gate_proj.weight"), 6144, 1536);
    assert_shape2(tensor(&v, "layers.15.mlp.gate_proj.weight"), 12288, 1536);
    assert_shape2(tensor(&v, "layers.3.per_layer_input_gate.weight"), 256, 1536);
    assert_shape2(tensor(&v, "layers.3.per_layer_projection.weight"), 1536, 256);
    const g4_tensor *q = tensor(&v, "layers.7.self_attn.q_proj.weight");
    assert_string_equal(q->module, "model.language_model.layers.7.self_attn.q_proj");
    assert_int_equal(q->linear, G4_LIN_Q);
    assert_int_equal(q->layer, 7);
    const g4_tensor *s = tensor(&v, "layers.7.layer_scalar");
    assert_int_equal(s->group, G4_GROUP_BUFFER);
    assert_int_equal(s->numel, 1);
    assert_int_equal(tensor(&v, "layers.7.self_attn.q_norm.weight")->group, G4_GROUP_NORMS);
    /* Google's original uploads carry K/V for shared layers: a loader may skip those. */
    assert_true(
        g4_tensor_redundant(&v.plan, "model.language_model.layers.20.self_attn.k_proj.weight"));
    assert_true(
        g4_tensor_redundant(&v.plan, "model.language_model.layers.34.self_attn.k_norm.weight"));
    assert_false(
        g4_tensor_redundant(&v.plan, "model.language_model.layers.14.self_attn.k_proj.weight"));
    assert_false(
        g4_tensor_redundant(&v.plan, "model.language_model.layers.20.self_attn.q_proj.weight"));
    assert_true(g4_tensor_redundant(&v.plan, "lm_head.weight"));
    g4_desc_free(&v);

    variant_load(&v, "e4b");
    assert_shape2(tensor(&v, "embed_tokens_per_layer.weight"), 262144, 10752);
    g4_desc_free(&v);

    variant_load(&v, "26b-a4b");
    const g4_tensor *gu = tensor(&v, "layers.3.experts.gate_up_proj");
    assert_int_equal(gu->ndim, 3);
    assert_int_equal(gu->shape[0], 128);
    assert_int_equal(gu->shape[1], 1408);
    assert_int_equal(gu->shape[2], 2816);
    assert_int_equal(gu->count, 128);
    assert_int_equal(gu->out, 1408);
    assert_int_equal(gu->in, 2816);
    assert_string_equal(gu->module, "model.language_model.layers.3.experts.gate_up_proj");
    const g4_tensor *dn = tensor(&v, "layers.3.experts.down_proj");
    assert_int_equal(dn->shape[1], 2816);
    assert_int_equal(dn->shape[2], 704);
    assert_shape2(tensor(&v, "layers.3.router.proj.weight"), 128, 2816);
    assert_int_equal(tensor(&v, "layers.3.router.per_expert_scale")->numel, 128);
    assert_int_equal(tensor(&v, "layers.3.pre_feedforward_layernorm_2.weight")->numel, 2816);
    g4_desc_free(&v);
}

/* Exact counts are those of transformers itself (Gemma4ForConditionalGeneration built from these
 * config.json files on the meta device; tools/check_g4_tensors.py); the rounded ones are the
 * spec's table. */
static void test_param_counts(void **state) {
    static const struct {
        const char *name;
        int64_t total, active;
        double approx_total, approx_active, approx_ple_table;
    } cases[] = {
        {"e2b", 4628569344, 4628569344, 4.6e9, 0, 2.35e9},
        {"e4b", 7463013376, 7463013376, 7.5e9, 0, 2.82e9},
        {"12b", 11907350272, 11907350272, 11.9e9, 0, 0},
        {"26b-a4b", 25233141760, 3822530560, 25.2e9, 3.8e9, 0},
        {"31b", 30697345280, 30697345280, 30.7e9, 0, 0},
    };
    for (size_t i = 0; i < EFT_ARRAY_LEN(cases); i++) {
        g4_desc v;
        variant_load(&v, cases[i].name);
        g4_param_counts n;
        g4_count_params(&v.plan, &v.ts, &n);
        print_message("%-8s total %lld active %lld embed %lld ple %lld attention %lld mlp %lld "
                      "norms %lld router %lld experts %lld\n",
                      cases[i].name, (long long)n.total, (long long)n.active,
                      (long long)n.group[G4_GROUP_EMBED], (long long)n.group[G4_GROUP_PLE],
                      (long long)n.group[G4_GROUP_ATTENTION], (long long)n.group[G4_GROUP_MLP],
                      (long long)n.group[G4_GROUP_NORMS], (long long)n.group[G4_GROUP_MOE_ROUTER],
                      (long long)n.group[G4_GROUP_MOE_EXPERTS]);
        assert_int_equal(n.total, cases[i].total);
        assert_int_equal(n.active, cases[i].active);
        assert_close(n.total, cases[i].approx_total, 0.01);
        if (cases[i].approx_active > 0) assert_close(n.active, cases[i].approx_active, 0.01);
        if (cases[i].approx_ple_table > 0) {
            const g4_tensor *t = tensor(&v, "embed_tokens_per_layer.weight");
            assert_close(t->numel, cases[i].approx_ple_table, 0.01);
        }
        int64_t sum = 0;
        for (int g = 0; g < G4_GROUP_BUFFER; g++) sum += n.group[g];
        assert_int_equal(sum, n.total);
        assert_int_equal(n.group[G4_GROUP_BUFFER], v.plan.L);
        g4_desc_free(&v);
    }
}

/* ---- config spellings and defaults ---------------------------------------------------------- */

/* The 31B config.json with its two full-layer keys replaced by per_layer_config, as newer
 * transformers re-saves it (keys zero-padded; the KV override present because k_eq_v). */
static char *resave_with_per_layer_config(const char *name) {
    char *path = eft_asprintf("%s/tests/data_files/gemma4/%s/config.json", EFT_SOURCE_DIR, name);
    cJSON *root = eft_json_parse_file(path);
    eft_free(path);
    assert_non_null(root);
    cJSON *tc = cJSON_GetObjectItem(root, "text_config");
    int gkv = (int)cJSON_GetObjectItem(tc, "num_global_key_value_heads")->valuedouble;
    bool keqv = cJSON_IsTrue(cJSON_GetObjectItem(tc, "attention_k_eq_v"));
    cJSON_DeleteItemFromObject(tc, "global_head_dim");
    cJSON_DeleteItemFromObject(tc, "num_global_key_value_heads");
    cJSON *plc = cJSON_AddObjectToObject(tc, "per_layer_config");
    cJSON *types = cJSON_GetObjectItem(tc, "layer_types");
    for (int l = 0; l < cJSON_GetArraySize(types); l++) {
        if (strcmp(cJSON_GetArrayItem(types, l)->valuestring, "full_attention")) continue;
        char key[16];
        snprintf(key, sizeof key, "%02d", l);
        cJSON *o = cJSON_AddObjectToObject(plc, key);
        cJSON_AddNumberToObject(o, "head_dim", 512);
        if (keqv) cJSON_AddNumberToObject(o, "num_key_value_heads", gkv);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

static void assert_same_plan(const g4_desc *a, const g4_desc *b) {
    assert_int_equal(a->plan.L, b->plan.L);
    assert_memory_equal(a->plan.layers, b->plan.layers, sizeof(g4_layer) * (size_t)a->plan.L);
    assert_int_equal(a->ts.n, b->ts.n);
    for (int i = 0; i < a->ts.n; i++) {
        const g4_tensor *x = &a->ts.t[i], *y = &b->ts.t[i];
        assert_string_equal(x->name + strlen(a->cfg.weight_prefix),
                            y->name + strlen(b->cfg.weight_prefix));
        assert_memory_equal(x->shape, y->shape, sizeof x->shape);
    }
}

static void test_per_layer_config_spelling(void **state) {
    static const char *names[] = {"31b", "e2b", "26b-a4b"};
    for (size_t i = 0; i < EFT_ARRAY_LEN(names); i++) {
        g4_desc a, b;
        variant_load(&a, names[i]);
        char *json = resave_with_per_layer_config(names[i]);
        assert_null(strstr(json, "global_head_dim"));
        variant_from_json(&b, json);
        cJSON_free(json);
        assert_same_plan(&a, &b);
        g4_desc_free(&a);
        g4_desc_free(&b);
    }
}

/* A text-only gemma4_text config (a Gemma4ForCausalLM save): the text_config of the 31B
 * wrapper on its own. Same plan, weights under "model.". */
static void test_text_only(void **state) {
    char *path = eft_asprintf("%s/tests/data_files/gemma4/31b/config.json", EFT_SOURCE_DIR);
    cJSON *root = eft_json_parse_file(path);
    eft_free(path);
    cJSON *tc = cJSON_DetachItemFromObject(root, "text_config");
    cJSON_Delete(root);
    char *json = cJSON_Print(tc);
    cJSON_Delete(tc);
    g4_desc a, b;
    variant_from_json(&b, json);
    cJSON_free(json);
    variant_load(&a, "31b");
    assert_false(b.cfg.wrapper);
    assert_false(b.cfg.has_vision);
    assert_string_equal(b.cfg.model_type, "gemma4_text");
    assert_string_equal(b.cfg.weight_prefix, "model.");
    assert_non_null(g4_tensors_find(&b.ts, "model.layers.59.self_attn.o_proj.weight"));
    assert_same_plan(&a, &b);
    /* The wrapper's top-level eos list wins there; text_config's single id here. */
    assert_int_equal(a.cfg.n_eos, 2);
    assert_int_equal(a.cfg.eos_token_ids[1], 106);
    assert_int_equal(b.cfg.n_eos, 1);
    assert_int_equal(b.cfg.eos_token_ids[0], 1);
    g4_desc_free(&a);
    g4_desc_free(&b);
}

/* Absent fields take Gemma4TextConfig's defaults (spec 2.1). */
static void test_defaults(void **state) {
    g4_desc v;
    variant_from_json(&v, "{\"model_type\": \"gemma4_text\"}");
    const g4_config *c = &v.cfg;
    assert_int_equal(c->vocab_size, 262144);
    assert_int_equal(c->hidden_size, 2304);
    assert_int_equal(c->intermediate_size, 9216);
    assert_int_equal(c->num_hidden_layers, 30);
    assert_int_equal(c->num_attention_heads, 8);
    assert_int_equal(c->num_key_value_heads, 4);
    assert_int_equal(c->head_dim, 256);
    assert_int_equal(c->sliding_window, 512);
    assert_int_equal(c->max_position_embeddings, 131072);
    assert_int_equal(c->hidden_size_per_layer_input, 256);
    assert_int_equal(c->vocab_size_per_layer_input, 262144);
    assert_int_equal(c->num_kv_shared_layers, 0);
    assert_false(c->enable_moe_block);
    assert_false(c->attention_k_eq_v);
    assert_true(c->tie_word_embeddings);
    assert_true(c->final_logit_softcapping == 0);
    assert_true(c->rms_norm_eps == 1e-6);
    assert_int_equal(c->pad_token_id, 0);
    assert_int_equal(c->bos_token_id, 2);
    assert_int_equal(c->eos_token_ids[0], 1);
    assert_int_equal(c->bidirectional, G4_BIDI_NONE);
    assert_int_equal(c->rope[G4_ATTN_SLIDING].type, G4_ROPE_DEFAULT);
    assert_true(c->rope[G4_ATTN_FULL].partial_rotary_factor == 0.25);
    for (int l = 0; l < 30; l++) {
        const g4_layer *y = &v.plan.layers[l];
        bool full = (l + 1) % 6 == 0;
        assert_int_equal(y->kind, full ? G4_ATTN_FULL : G4_ATTN_SLIDING);
        assert_int_equal(y->head_dim, full ? 512 : 256); /* global_head_dim defaults to 512 */
        assert_int_equal(y->n_kv, 4); /* no k_eq_v: full layers keep num_key_value_heads */
        assert_true(y->ple);
    }
    assert_true(v.plan.embed_scale == 48.0f); /* bf16(sqrt(2304)) */
    g4_desc_free(&v);

    /* The default pattern with the last layer forced full. */
    variant_from_json(&v, "{\"model_type\": \"gemma4_text\", \"num_hidden_layers\": 8}");
    for (int l = 0; l < 8; l++)
        assert_int_equal(v.plan.layers[l].kind, l == 5 || l == 7 ? G4_ATTN_FULL : G4_ATTN_SLIDING);
    g4_desc_free(&v);
    variant_from_json(&v, "{\"model_type\": \"gemma4_text\", \"num_hidden_layers\": 2, "
                          "\"layer_types\": [\"full_attention\", \"sliding_attention\"]}");
    assert_int_equal(v.plan.layers[1].kind, G4_ATTN_FULL);
    g4_desc_free(&v);

    /* A null hidden_size_per_layer_input means no PLE. */
    variant_from_json(&v, "{\"model_type\": \"gemma4_text\", \"hidden_size_per_layer_input\": "
                          "null}");
    assert_int_equal(v.plan.P, 0);
    g4_desc_free(&v);

    /* The unified wrapper's text model has other defaults and no PLE or MoE. */
    variant_from_json(&v, "{\"model_type\": \"gemma4_unified\", \"text_config\": {}}");
    assert_true(v.cfg.unified);
    assert_int_equal(v.cfg.sliding_window, 1024);
    assert_int_equal(v.cfg.max_position_embeddings, 262144);
    assert_int_equal(v.cfg.bidirectional, G4_BIDI_VISION);
    assert_int_equal(v.plan.P, 0);
    assert_false(v.plan.layers[0].moe);
    g4_desc_free(&v);
}

/* ---- config errors ----------------------------------------------------------------------------
 */

static void expect_error(const char *json, const char *what) {
    cJSON *root = eft_json_parse(json, strlen(json), "m/config.json");
    assert_non_null(root);
    g4_config c;
    eft_err_clear();
    int rc = g4_config_parse(&c, root, "m/config.json");
    cJSON_Delete(root);
    if (rc == 0) {
        g4_config_free(&c);
        fail_msg("expected an error containing \"%s\" for %s", what, json);
    }
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    assert_contains(eft_err_msg(), "m/config.json");
    assert_contains(eft_err_msg(), what);
    assert_null(strchr(eft_err_msg(), '\n'));
    eft_err_clear();
}

#define TEXT(fields) "{\"model_type\": \"gemma4\", \"text_config\": {" fields "}}"

static void test_config_errors(void **state) {
    expect_error(TEXT("\"num_attention_heads\": 8, \"num_key_value_heads\": 3"),
                 "text_config.num_attention_heads (8) is not divisible by the 3 KV heads");
    expect_error(TEXT("\"num_hidden_layers\": 4, \"layer_types\": [\"sliding_attention\", "
                      "\"full_attention\", \"full_attention\"]"),
                 "text_config.layer_types has 3 entries but num_hidden_layers is 4");
    expect_error(TEXT("\"num_hidden_layers\": 2, \"layer_types\": [\"sliding_attention\", "
                      "\"chunked_attention\"]"),
                 "text_config.layer_types[1]: unknown layer type \"chunked_attention\"");
    expect_error(TEXT("\"num_hidden_layers\": 4, \"num_kv_shared_layers\": 4"),
                 "text_config.num_kv_shared_layers (4) must be less than num_hidden_layers");
    expect_error(TEXT("\"num_hidden_layers\": 6, \"num_kv_shared_layers\": 1"),
                 "no full_attention layer comes before layer 5");
    expect_error(TEXT("\"attention_k_eq_v\": true"),
                 "attention_k_eq_v is true but num_global_key_value_heads is missing");
    expect_error(TEXT("\"enable_moe_block\": true, \"top_k_experts\": 8"),
                 "enable_moe_block is true but num_experts is missing");
    expect_error(TEXT("\"enable_moe_block\": true, \"num_experts\": 4, \"top_k_experts\": 8, "
                      "\"moe_intermediate_size\": 16"),
                 "top_k_experts (8) is larger than num_experts (4)");
    expect_error(TEXT("\"hidden_activation\": \"silu\""),
                 "text_config.hidden_activation \"silu\" is not supported");
    expect_error(TEXT("\"hidden_size\": \"big\""),
                 "text_config.hidden_size: expected a whole number, found \"big\"");
    expect_error(TEXT("\"head_dim\": 0"), "text_config.head_dim is 0; it must be at least 2");
    expect_error(TEXT("\"per_layer_config\": {\"x5\": {\"head_dim\": 512}}"),
                 "per_layer_config: key \"x5\" is not a layer index");
    expect_error(TEXT("\"per_layer_config\": {\"5\": {\"intermediate_size\": 512}}"),
                 "per_layer_config.5.intermediate_size: eft reads only head_dim");
    expect_error(TEXT("\"global_head_dim\": 512, \"per_layer_config\": {\"5\": {\"head_dim\": "
                      "256}}"),
                 "global_head_dim is 512 but per_layer_config gives full layer 5 head_dim 256");
    expect_error(TEXT("\"num_hidden_layers\": 12, \"per_layer_config\": {\"05\": {\"head_dim\": "
                      "512}, \"11\": {\"head_dim\": 128}}"),
                 "layer 11 has head_dim 128 and 4 KV heads but layer 5");
    expect_error(TEXT("\"rope_parameters\": {\"sliding_attention\": {\"rope_type\": \"yarn\", "
                      "\"rope_theta\": 10000.0}}"),
                 "rope_parameters.sliding_attention.rope_type \"yarn\" is not supported");
    expect_error(TEXT("\"rope_parameters\": {\"sliding_attention\": {\"rope_type\": "
                      "\"default\"}}"),
                 "rope_parameters.sliding_attention.rope_theta is missing");
    expect_error(TEXT("\"rope_parameters\": {\"sliding_attention\": {\"rope_theta\": 1e4}}"),
                 "rope_parameters has no \"full_attention\" entry");
    expect_error(TEXT("\"use_bidirectional_attention\": \"all\""), "non-causal");
    expect_error(TEXT("\"attention_bias\": true"), "attention_bias is true");
    expect_error(TEXT("\"eos_token_id\": 300000"), "eos_token_id 300000 is outside the vocabulary");
    expect_error("{\"model_type\": \"gemma3\", \"text_config\": {}}",
                 "model_type \"gemma3\" is not Gemma 4");
    expect_error("{\"architectures\": [\"Gemma4ForConditionalGeneration\"]}",
                 "\"model_type\" is missing");
    expect_error("{\"model_type\": \"gemma4\"}", "text_config is missing");
    expect_error("{\"model_type\": \"gemma4\", \"tie_word_embeddings\": false, \"text_config\": "
                 "{\"tie_word_embeddings\": true}}",
                 "tie_word_embeddings is false at the top level but true in text_config");
}

/* A top-level rope_theta fills a nested entry that lacks one (transformers'
 * standardize_rope_params); proportional RoPE reads factor and partial_rotary_factor. */
static void test_rope_spellings(void **state) {
    g4_desc v;
    variant_from_json(&v, TEXT("\"rope_theta\": 5000.0, \"rope_parameters\": {"
                               "\"sliding_attention\": {\"type\": \"default\"},"
                               "\"full_attention\": {\"rope_type\": \"proportional\", "
                               "\"rope_theta\": 1e6, \"partial_rotary_factor\": 0.5, "
                               "\"factor\": 2.0}}"));
    const g4_layer *s = &v.plan.layers[0], *f = &v.plan.layers[5];
    assert_true(s->rope_theta == 5000.0);
    assert_int_equal(s->rope_pairs, 128);
    assert_int_equal(f->rope_pairs, 128); /* int(0.5 * 512 // 2) */
    float inv[256];
    g4_inv_freq(f, inv);
    assert_close(inv[0], 0.5, 1e-7); /* divided by factor */
    assert_true(inv[127] > 0 && inv[128] == 0);
    g4_desc_free(&v);
}

static void test_load_errors(void **state) {
    char *dir = test_tmpdir("g4cfg");
    char *path = eft_path_join(dir, "config.json");
    eft_err_clear();
    g4_config c;
    assert_int_equal(g4_config_load(&c, path), -1); /* missing */
    assert_contains(eft_err_msg(), "config.json");
    test_write_file(path, "{\"model_type\": \"gemma4_text\",\n  \"hidden_size\": }");
    eft_err_clear();
    assert_int_equal(g4_config_load(&c, path), -1);
    assert_contains(eft_err_msg(), "config.json:2:");
    eft_err_clear();
    eft_free(path);
    test_tmpdir_cleanup(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_plans),
        cmocka_unit_test(test_kv_sharing),
        cmocka_unit_test(test_inv_freq),
        cmocka_unit_test(test_tensor_shapes),
        cmocka_unit_test(test_tensor_details),
        cmocka_unit_test(test_param_counts),
        cmocka_unit_test(test_per_layer_config_spelling),
        cmocka_unit_test(test_text_only),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_rope_spellings),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
