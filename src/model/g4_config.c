/* g4_config.c: reading and checking a Gemma 4 config.json (see g4_config.h).
 *
 * The rules follow Hugging Face's Gemma4TextConfig.__post_init__ and its per-layer-config
 * machinery (transformers 5.x), read for behaviour: layer_types default to five sliding layers
 * then one full, with the last layer forced full; the full-layer head dim and KV heads come from
 * either spelling; rope_parameters hold one entry per layer type. Where transformers would accept
 * a value that eft cannot train correctly (another activation, bidirectional "all", biases), the
 * value is refused with a message saying so.
 */
#include "model/g4_config.h"

#include "base/err.h"
#include "base/log.h"
#include "io/json.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The object being read, and how to name its keys in messages. */
typedef struct reader {
    const cJSON *obj;
    const char *file;   /* "…/config.json" */
    const char *prefix; /* "text_config." or "" */
} reader;

const char *g4_attn_kind_name(g4_attn_kind k) {
    return k == G4_ATTN_FULL ? "full_attention" : "sliding_attention";
}

/* A value present and not null, or NULL. */
static const cJSON *item(const reader *r, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->obj, key);
    return cJSON_IsNull(v) ? NULL : v;
}

/* A short description of a JSON value for messages: "\"sixteen\"", "2.5", "a list". */
static const char *describe(const cJSON *v, char *buf, size_t n) {
    if (cJSON_IsString(v))
        snprintf(buf, n, "\"%.40s\"", v->valuestring);
    else if (cJSON_IsNumber(v))
        snprintf(buf, n, "%.17g", v->valuedouble);
    else if (cJSON_IsBool(v))
        snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsArray(v))
        snprintf(buf, n, "a list");
    else if (cJSON_IsObject(v))
        snprintf(buf, n, "an object");
    else
        snprintf(buf, n, "null");
    return buf;
}

/* An integer >= min, or `def` when the key is absent or null. */
static int get_int(const reader *r, const char *key, int64_t def, int64_t min, int64_t *out) {
    const cJSON *v = item(r, key);
    if (!v) {
        *out = def;
        return 0;
    }
    char b[64];
    if (!eft_json_is_integer(v))
        return eft_fail("%s: %s%s: expected a whole number, found %s. Write an integer, or remove "
                        "the key to use the default.",
                        r->file, r->prefix, key, describe(v, b, sizeof b));
    int64_t x = (int64_t)v->valuedouble;
    if (x < min || x > ((int64_t)1 << 40))
        return eft_fail("%s: %s%s is %lld; it must be at least %lld (and of a sane size). Fix the "
                        "value.",
                        r->file, r->prefix, key, (long long)x, (long long)min);
    *out = x;
    return 0;
}

/* An int-sized integer (layer counts, heads, dims). */
static int get_small(const reader *r, const char *key, int def, int min, int *out) {
    int64_t x;
    if (get_int(r, key, def, min, &x)) return -1;
    if (x > 1 << 24)
        return eft_fail("%s: %s%s is %lld, far larger than any Gemma 4 model. Fix the value.",
                        r->file, r->prefix, key, (long long)x);
    *out = (int)x;
    return 0;
}

static int get_num(const reader *r, const char *key, double def, double *out) {
    const cJSON *v = item(r, key);
    char b[64];
    if (!v)
        *out = def;
    else if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return eft_fail("%s: %s%s: expected a number, found %s. Write a number, or remove the key "
                        "to use the default.",
                        r->file, r->prefix, key, describe(v, b, sizeof b));
    else
        *out = v->valuedouble;
    return 0;
}

static int get_bool(const reader *r, const char *key, bool def, bool *out) {
    const cJSON *v = item(r, key);
    char b[64];
    if (!v)
        *out = def;
    else if (!cJSON_IsBool(v))
        return eft_fail("%s: %s%s: expected true or false, found %s. Write true or false.", r->file,
                        r->prefix, key, describe(v, b, sizeof b));
    else
        *out = cJSON_IsTrue(v);
    return 0;
}

static int get_str(const reader *r, const char *key, const char *def, const char **out) {
    const cJSON *v = item(r, key);
    char b[64];
    if (!v)
        *out = def;
    else if (!cJSON_IsString(v))
        return eft_fail("%s: %s%s: expected a string, found %s. Write a quoted string.", r->file,
                        r->prefix, key, describe(v, b, sizeof b));
    else
        *out = v->valuestring;
    return 0;
}

/* A token id: null gives -1. */
static int get_token(const reader *r, const char *key, int64_t def, int64_t vocab, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->obj, key);
    if (v && cJSON_IsNull(v)) {
        *out = -1;
        return 0;
    }
    if (get_int(r, key, def, 0, out)) return -1;
    if (*out >= vocab)
        return eft_fail("%s: %s%s is %lld, outside the vocabulary of %lld tokens. Fix the id.",
                        r->file, r->prefix, key, (long long)*out, (long long)vocab);
    return 0;
}

/* eos_token_id: an integer or a list of integers. Leaves c->eos alone when absent. */
static int get_eos(const reader *r, int64_t vocab, g4_config *c) {
    const cJSON *v = item(r, "eos_token_id");
    if (!v) return 0;
    char b[64];
    const char *hint = "Write a token id or a list of ids, such as [1, 106].";
    if (eft_json_is_integer(v)) {
        c->eos_token_ids[0] = (int64_t)v->valuedouble;
        c->n_eos = 1;
    } else if (cJSON_IsArray(v)) {
        int n = cJSON_GetArraySize(v);
        if (n > G4_MAX_EOS)
            return eft_fail("%s: %seos_token_id lists %d ids; eft keeps at most %d. Shorten it.",
                            r->file, r->prefix, n, G4_MAX_EOS);
        c->n_eos = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            if (!eft_json_is_integer(e))
                return eft_fail("%s: %seos_token_id[%d]: expected a whole number, found %s. %s",
                                r->file, r->prefix, c->n_eos, describe(e, b, sizeof b), hint);
            c->eos_token_ids[c->n_eos++] = (int64_t)e->valuedouble;
        }
    } else {
        return eft_fail("%s: %seos_token_id: found %s. %s", r->file, r->prefix,
                        describe(v, b, sizeof b), hint);
    }
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] < 0 || c->eos_token_ids[i] >= vocab)
            return eft_fail("%s: %seos_token_id %lld is outside the vocabulary of %lld tokens. "
                            "Fix the id.",
                            r->file, r->prefix, (long long)c->eos_token_ids[i], (long long)vocab);
    return 0;
}

static int parse_layer_types(const reader *r, g4_config *c) {
    int L = c->num_hidden_layers;
    c->layer_types = eft_calloc((size_t)L, sizeof *c->layer_types);
    const cJSON *v = item(r, "layer_types");
    char b[64];
    if (!v) {
        for (int l = 0; l < L; l++)
            c->layer_types[l] = (l + 1) % 6 ? G4_ATTN_SLIDING : G4_ATTN_FULL;
    } else {
        if (!cJSON_IsArray(v))
            return eft_fail(
                "%s: %slayer_types: expected a list of layer types, found %s. Write one "
                "\"sliding_attention\" or \"full_attention\" per layer.",
                r->file, r->prefix, describe(v, b, sizeof b));
        int n = cJSON_GetArraySize(v);
        if (n != L)
            return eft_fail("%s: %slayer_types has %d entries but num_hidden_layers is %d. Give "
                            "one type per layer.",
                            r->file, r->prefix, n, L);
        int l = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            if (cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention"))
                c->layer_types[l] = G4_ATTN_SLIDING;
            else if (cJSON_IsString(e) && !strcmp(e->valuestring, "full_attention"))
                c->layer_types[l] = G4_ATTN_FULL;
            else
                return eft_fail("%s: %slayer_types[%d]: unknown layer type %s. Gemma 4 layers are "
                                "\"sliding_attention\" or \"full_attention\".",
                                r->file, r->prefix, l, describe(e, b, sizeof b));
            l++;
        }
    }
    if (c->layer_types[L - 1] != G4_ATTN_FULL) {
        eft_warn("%s: %slayer_types: the last layer must be full_attention (as in transformers); "
                 "using full_attention for layer %d.",
                 r->file, r->prefix, L - 1);
        c->layer_types[L - 1] = G4_ATTN_FULL;
    }
    return 0;
}

/* Layer indices in per_layer_config are JSON strings, zero-padded when transformers writes
 * them ("05"). Returns the index or -1. */
static int layer_index(const char *s, int L) {
    if (!*s || strlen(s) > 9) return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p)) return -1;
    int i = atoi(s);
    return i < L ? i : -1;
}

/* Per-layer head dim and KV heads, from `per_layer_config` or from `global_head_dim` +
 * `num_global_key_value_heads`. */
static int parse_layer_overrides(const reader *r, g4_config *c) {
    int L = c->num_hidden_layers;
    c->layer_head_dim = eft_malloc((size_t)L * sizeof(int));
    c->layer_num_kv = eft_malloc((size_t)L * sizeof(int));
    for (int l = 0; l < L; l++) {
        c->layer_head_dim[l] = c->head_dim;
        c->layer_num_kv[l] = c->num_key_value_heads;
    }
    int global_hd = 512, global_kv = 0;
    if (get_small(r, "global_head_dim", 512, 2, &global_hd) ||
        get_small(r, "num_global_key_value_heads", 0, 1, &global_kv))
        return -1;
    bool have_hd = item(r, "global_head_dim") != NULL;
    bool have_kv = item(r, "num_global_key_value_heads") != NULL;
    const cJSON *plc = item(r, "per_layer_config");
    char b[64];

    if (!plc) {
        if (c->attention_k_eq_v && !have_kv)
            return eft_fail("%s: %sattention_k_eq_v is true but num_global_key_value_heads is "
                            "missing. Give the full layers' KV head count (2 for 26B-A4B, 4 for "
                            "31B) or set attention_k_eq_v to false.",
                            r->file, r->prefix);
        for (int l = 0; l < L; l++) {
            if (c->layer_types[l] != G4_ATTN_FULL) continue;
            c->layer_head_dim[l] = global_hd;
            if (c->attention_k_eq_v) c->layer_num_kv[l] = global_kv;
        }
        return 0;
    }
    if (!cJSON_IsObject(plc))
        return eft_fail("%s: %sper_layer_config: expected an object mapping layer indices to "
                        "{\"head_dim\", \"num_key_value_heads\"}, found %s. Fix or remove it.",
                        r->file, r->prefix, describe(plc, b, sizeof b));
    const cJSON *e;
    cJSON_ArrayForEach(e, plc) {
        int l = layer_index(e->string, L);
        if (l < 0)
            return eft_fail("%s: %sper_layer_config: key \"%s\" is not a layer index in [0, %d). "
                            "Use layer numbers as keys.",
                            r->file, r->prefix, e->string, L);
        if (!cJSON_IsObject(e))
            return eft_fail("%s: %sper_layer_config.%s: expected an object, found %s.", r->file,
                            r->prefix, e->string, describe(e, b, sizeof b));
        const cJSON *kv;
        cJSON_ArrayForEach(kv, e) {
            bool hd = !strcmp(kv->string, "head_dim");
            if (!hd && strcmp(kv->string, "num_key_value_heads"))
                return eft_fail("%s: %sper_layer_config.%s.%s: eft reads only head_dim and "
                                "num_key_value_heads per layer. Remove the other keys.",
                                r->file, r->prefix, e->string, kv->string);
            if (!eft_json_is_integer(kv) || kv->valuedouble < 1 || kv->valuedouble > 1 << 20)
                return eft_fail("%s: %sper_layer_config.%s.%s: expected a positive whole number, "
                                "found %s.",
                                r->file, r->prefix, e->string, kv->string,
                                describe(kv, b, sizeof b));
            if (hd)
                c->layer_head_dim[l] = (int)kv->valuedouble;
            else
                c->layer_num_kv[l] = (int)kv->valuedouble;
        }
    }
    /* transformers ignores the global keys when per_layer_config is present; a file holding
     * both must at least agree with itself. */
    for (int l = 0; l < L; l++) {
        if (c->layer_types[l] != G4_ATTN_FULL) continue;
        if (have_hd && c->layer_head_dim[l] != global_hd)
            return eft_fail("%s: %sglobal_head_dim is %d but per_layer_config gives full layer %d "
                            "head_dim %d. Keep one spelling (remove global_head_dim).",
                            r->file, r->prefix, global_hd, l, c->layer_head_dim[l]);
        if (have_kv && c->attention_k_eq_v && c->layer_num_kv[l] != global_kv)
            return eft_fail("%s: %snum_global_key_value_heads is %d but per_layer_config gives "
                            "full layer %d num_key_value_heads %d. Keep one spelling (remove "
                            "num_global_key_value_heads).",
                            r->file, r->prefix, global_kv, l, c->layer_num_kv[l]);
    }
    return 0;
}

/* Every layer of one type has one head dim and one KV head count: RoPE frequencies and shared
 * K/V are per type. Heads divide evenly. */
static int check_heads(const reader *r, const g4_config *c) {
    int first[G4_NATTN_KINDS] = {-1, -1};
    for (int l = 0; l < c->num_hidden_layers; l++) {
        int D = c->layer_head_dim[l], kv = c->layer_num_kv[l];
        g4_attn_kind k = c->layer_types[l];
        if (D % 2)
            return eft_fail("%s: layer %d has head_dim %d; RoPE needs an even head dim. Fix "
                            "%shead_dim / global_head_dim.",
                            r->file, l, D, r->prefix);
        if (c->num_attention_heads % kv)
            return eft_fail("%s: %snum_attention_heads (%d) is not divisible by the %d KV heads of "
                            "layer %d (%s). Fix num_key_value_heads / num_global_key_value_heads.",
                            r->file, r->prefix, c->num_attention_heads, kv, l,
                            g4_attn_kind_name(k));
        if (first[k] < 0) {
            first[k] = l;
        } else if (D != c->layer_head_dim[first[k]] || kv != c->layer_num_kv[first[k]]) {
            int f = first[k];
            return eft_fail("%s: layer %d has head_dim %d and %d KV heads but layer %d (also %s) "
                            "has %d and %d. eft needs one shape per layer type; fix "
                            "%sper_layer_config.",
                            r->file, l, D, kv, f, g4_attn_kind_name(k), c->layer_head_dim[f],
                            c->layer_num_kv[f], r->prefix);
        }
    }
    return 0;
}

static int parse_rope_entry(const reader *r, const cJSON *e, g4_attn_kind k, double theta_fallback,
                            g4_rope *out) {
    const char *name = g4_attn_kind_name(k);
    char b[64];
    char where[96];
    snprintf(where, sizeof where, "%srope_parameters.%s.", r->prefix, name);
    reader sub = {e, r->file, where};
    if (!cJSON_IsObject(e))
        return eft_fail("%s: %srope_parameters.%s: expected an object with rope_type and "
                        "rope_theta, found %s.",
                        r->file, r->prefix, name, describe(e, b, sizeof b));
    const char *type;
    if (get_str(&sub, "rope_type", NULL, &type)) return -1;
    if (!type && get_str(&sub, "type", "default", &type)) return -1;
    if (!strcmp(type, "default"))
        out->type = G4_ROPE_DEFAULT;
    else if (!strcmp(type, "proportional"))
        out->type = G4_ROPE_PROPORTIONAL;
    else
        return eft_fail("%s: %srope_type \"%s\" is not supported; Gemma 4 uses \"default\" "
                        "(sliding layers) and \"proportional\" (full layers).",
                        r->file, where, type);
    if (get_num(&sub, "rope_theta", theta_fallback, &out->theta)) return -1;
    if (!(out->theta > 1.0))
        return eft_fail("%s: %srope_theta is %s. Give the RoPE base (10000 for sliding, 1000000 "
                        "for full layers).",
                        r->file, where, item(&sub, "rope_theta") ? "not above 1" : "missing");
    out->partial_rotary_factor = 1.0;
    out->factor = 1.0;
    if (out->type == G4_ROPE_PROPORTIONAL) {
        /* The default rule ignores both keys in transformers; only proportional reads them. */
        if (get_num(&sub, "partial_rotary_factor", 1.0, &out->partial_rotary_factor) ||
            get_num(&sub, "factor", 1.0, &out->factor))
            return -1;
        if (!(out->partial_rotary_factor > 0 && out->partial_rotary_factor <= 1))
            return eft_fail("%s: %spartial_rotary_factor is %g; it must lie in (0, 1] (0.25 for "
                            "Gemma 4).",
                            r->file, where, out->partial_rotary_factor);
        if (!(out->factor > 0))
            return eft_fail("%s: %sfactor is %g; it must be positive (1.0 for Gemma 4).", r->file,
                            where, out->factor);
    }
    return 0;
}

static int parse_rope(const reader *r, g4_config *c) {
    c->rope[G4_ATTN_SLIDING] = (g4_rope){G4_ROPE_DEFAULT, 10000.0, 1.0, 1.0};
    c->rope[G4_ATTN_FULL] = (g4_rope){G4_ROPE_PROPORTIONAL, 1000000.0, 0.25, 1.0};
    const cJSON *rp = item(r, "rope_parameters");
    if (!rp) return 0; /* transformers' defaults, as above */
    char b[64];
    if (!cJSON_IsObject(rp))
        return eft_fail("%s: %srope_parameters: expected an object, found %s.", r->file, r->prefix,
                        describe(rp, b, sizeof b));
    /* A nested entry without rope_theta takes a top-level rope_theta (transformers'
     * standardize_rope_params); there is no other fallback. */
    double theta_fallback = NAN;
    if (get_num(r, "rope_theta", NAN, &theta_fallback)) return -1;
    for (int k = 0; k < G4_NATTN_KINDS; k++) {
        bool used = false;
        for (int l = 0; l < c->num_hidden_layers; l++) used |= c->layer_types[l] == (g4_attn_kind)k;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(rp, g4_attn_kind_name(k));
        if (!e || cJSON_IsNull(e)) {
            if (!used) continue;
            return eft_fail("%s: %srope_parameters has no \"%s\" entry. Give one object per layer "
                            "type, e.g. \"%s\": {\"rope_type\": \"%s\", \"rope_theta\": %s}.",
                            r->file, r->prefix, g4_attn_kind_name(k), g4_attn_kind_name(k),
                            k ? "proportional" : "default", k ? "1000000.0" : "10000.0");
        }
        if (parse_rope_entry(r, e, (g4_attn_kind)k, theta_fallback, &c->rope[k])) return -1;
    }
    return 0;
}

/* Shared layers need a same-type layer before `first` to lend them K/V. */
static int check_kv_sharing(const reader *r, const g4_config *c) {
    int L = c->num_hidden_layers, first = L - c->num_kv_shared_layers;
    if (c->num_kv_shared_layers >= L)
        return eft_fail("%s: %snum_kv_shared_layers (%d) must be less than num_hidden_layers "
                        "(%d): some layer has to compute the shared K/V. Lower it.",
                        r->file, r->prefix, c->num_kv_shared_layers, L);
    for (int l = first; l < L; l++) {
        bool donor = false;
        for (int j = 0; j < first; j++) donor |= c->layer_types[j] == c->layer_types[l];
        if (!donor)
            return eft_fail("%s: %snum_kv_shared_layers is %d, so layers %d-%d reuse K/V, but no "
                            "%s layer comes before layer %d to provide it. Lower "
                            "num_kv_shared_layers or fix layer_types.",
                            r->file, r->prefix, c->num_kv_shared_layers, first, L - 1,
                            g4_attn_kind_name(c->layer_types[l]), first);
    }
    return 0;
}

static int parse_moe(const reader *r, g4_config *c) {
    if (get_bool(r, "enable_moe_block", false, &c->enable_moe_block)) return -1;
    if (!c->enable_moe_block) return 0;
    int64_t ie;
    if (get_small(r, "num_experts", 0, 1, &c->num_experts) ||
        get_small(r, "top_k_experts", 0, 1, &c->top_k_experts) ||
        get_int(r, "moe_intermediate_size", 0, 1, &ie))
        return -1;
    c->moe_intermediate_size = ie;
    const char *missing = !c->num_experts     ? "num_experts"
                          : !c->top_k_experts ? "top_k_experts"
                          : !ie               ? "moe_intermediate_size"
                                              : NULL;
    if (missing)
        return eft_fail("%s: %senable_moe_block is true but %s is missing. Give it (26B-A4B: "
                        "num_experts 128, top_k_experts 8, moe_intermediate_size 704) or set "
                        "enable_moe_block to false.",
                        r->file, r->prefix, missing);
    if (c->top_k_experts > c->num_experts)
        return eft_fail("%s: %stop_k_experts (%d) is larger than num_experts (%d). Fix one.",
                        r->file, r->prefix, c->top_k_experts, c->num_experts);
    return 0;
}

static int parse_text(const reader *r, g4_config *c) {
    const char *s;
    int64_t v;
    /* Sizes first: everything else is checked against them. */
    if (get_int(r, "vocab_size", 262144, 1, &c->vocab_size) ||
        get_int(r, "hidden_size", 2304, 1, &c->hidden_size) ||
        get_int(r, "intermediate_size", 9216, 1, &c->intermediate_size) ||
        get_small(r, "num_hidden_layers", 30, 1, &c->num_hidden_layers) ||
        get_small(r, "num_attention_heads", 8, 1, &c->num_attention_heads) ||
        get_small(r, "num_key_value_heads", 4, 1, &c->num_key_value_heads) ||
        get_small(r, "head_dim", 256, 2, &c->head_dim) ||
        get_bool(r, "attention_k_eq_v", false, &c->attention_k_eq_v) ||
        get_int(r, "sliding_window", c->unified ? 1024 : 512, 1, &c->sliding_window) ||
        get_int(r, "max_position_embeddings", c->unified ? 262144 : 131072, 1,
                &c->max_position_embeddings) ||
        get_small(r, "num_kv_shared_layers", 0, 0, &c->num_kv_shared_layers) ||
        get_bool(r, "use_double_wide_mlp", false, &c->use_double_wide_mlp) ||
        get_num(r, "rms_norm_eps", 1e-6, &c->rms_norm_eps) ||
        get_num(r, "initializer_range", 0.02, &c->initializer_range) ||
        get_num(r, "final_logit_softcapping", 0.0, &c->final_logit_softcapping) ||
        get_bool(r, "tie_word_embeddings", true, &c->tie_word_embeddings))
        return -1;
    if (!(c->rms_norm_eps > 0))
        return eft_fail("%s: %srms_norm_eps must be positive (1e-6 for Gemma 4).", r->file,
                        r->prefix);
    if (c->final_logit_softcapping < 0)
        return eft_fail("%s: %sfinal_logit_softcapping must be positive or null (30.0 for Gemma "
                        "4).",
                        r->file, r->prefix);

    if (get_str(r, "hidden_activation", "gelu_pytorch_tanh", &s)) return -1;
    if (strcmp(s, "gelu_pytorch_tanh"))
        return eft_fail("%s: %shidden_activation \"%s\" is not supported: Gemma 4 uses "
                        "\"gelu_pytorch_tanh\", the only activation eft implements.",
                        r->file, r->prefix, s);
    if (get_str(r, "use_bidirectional_attention", c->unified ? "vision" : NULL, &s)) return -1;
    if (!s)
        c->bidirectional = G4_BIDI_NONE;
    else if (!strcmp(s, "vision"))
        c->bidirectional = G4_BIDI_VISION;
    else if (!strcmp(s, "all"))
        return eft_fail("%s: %suse_bidirectional_attention \"all\" makes the model non-causal; "
                        "eft trains causal language models. Use null or \"vision\".",
                        r->file, r->prefix);
    else
        return eft_fail("%s: %suse_bidirectional_attention \"%s\" is unknown. Use null or "
                        "\"vision\".",
                        r->file, r->prefix, s);
    bool bias;
    double dropout;
    if (get_bool(r, "attention_bias", false, &bias) ||
        get_num(r, "attention_dropout", 0.0, &dropout))
        return -1;
    if (bias)
        return eft_fail("%s: %sattention_bias is true, but Gemma 4 has no biases and eft "
                        "implements none. Set it to false.",
                        r->file, r->prefix);
    if (dropout != 0)
        return eft_fail("%s: %sattention_dropout is %g; eft trains without dropout, as Gemma 4 "
                        "does. Set it to 0.",
                        r->file, r->prefix, dropout);

    /* Per-layer embeddings and MoE exist only in the gemma4 text model; the unified text model
     * has neither, and transformers ignores such keys there. */
    if (c->unified) {
        if (item(r, "hidden_size_per_layer_input") || item(r, "enable_moe_block"))
            eft_warn_once("%s: the gemma4_unified model has no per-layer embeddings or MoE; "
                          "ignoring hidden_size_per_layer_input / enable_moe_block.",
                          r->file);
    } else {
        if (get_int(r, "hidden_size_per_layer_input", 256, 0, &c->hidden_size_per_layer_input) ||
            get_int(r, "vocab_size_per_layer_input", 262144, 1, &c->vocab_size_per_layer_input) ||
            parse_moe(r, c))
            return -1;
        if (!item(r, "hidden_size_per_layer_input") &&
            cJSON_GetObjectItemCaseSensitive(r->obj, "hidden_size_per_layer_input"))
            c->hidden_size_per_layer_input = 0; /* explicit null: no PLE */
    }

    if (parse_layer_types(r, c) || parse_layer_overrides(r, c) || check_heads(r, c) ||
        parse_rope(r, c) || check_kv_sharing(r, c))
        return -1;

    c->n_eos = 1;
    c->eos_token_ids[0] = 1;
    if (get_token(r, "pad_token_id", 0, c->vocab_size, &c->pad_token_id) ||
        get_token(r, "bos_token_id", 2, c->vocab_size, &v) || get_eos(r, c->vocab_size, c))
        return -1;
    c->bos_token_id = v;
    return 0;
}

static void set_model_type(g4_config *c, const char *t) {
    snprintf(c->model_type, sizeof c->model_type, "%s", t);
}

int g4_config_parse(g4_config *c, const cJSON *root, const char *file) {
    memset(c, 0, sizeof *c);
    reader top = {root, file, ""};
    char b[64];
    if (!cJSON_IsObject(root))
        return eft_fail("%s: expected a JSON object at the top level, found %s. Is this a "
                        "Hugging Face config.json?",
                        file, describe(root, b, sizeof b));
    const char *mt;
    if (get_str(&top, "model_type", NULL, &mt)) return -1;
    if (!mt)
        return eft_fail("%s: \"model_type\" is missing. A Gemma 4 checkpoint's config.json says "
                        "\"gemma4\", \"gemma4_unified\" or \"gemma4_text\".",
                        file);
    set_model_type(c, mt);
    bool text_only = !strcmp(mt, "gemma4_text") || !strcmp(mt, "gemma4_unified_text");
    c->wrapper = !strcmp(mt, "gemma4") || !strcmp(mt, "gemma4_unified");
    c->unified = !strcmp(mt, "gemma4_unified") || !strcmp(mt, "gemma4_unified_text");
    if (!text_only && !c->wrapper)
        return eft_fail("%s: model_type \"%s\" is not Gemma 4. eft fine-tunes gemma4, "
                        "gemma4_unified and gemma4_text checkpoints.",
                        file, mt);
    c->weight_prefix = c->wrapper ? "model.language_model." : "model.";

    reader text = top;
    if (c->wrapper) {
        const cJSON *tc = item(&top, "text_config");
        if (!cJSON_IsObject(tc))
            return eft_fail("%s: text_config is %s; a %s config.json must hold the text model's "
                            "settings in a \"text_config\" object.",
                            file, tc ? "not an object" : "missing", mt);
        text = (reader){tc, file, "text_config."};
        const char *tmt;
        if (get_str(&text, "model_type", NULL, &tmt)) return -1;
        if (tmt && strcmp(tmt, "gemma4_text") && strcmp(tmt, "gemma4_unified_text"))
            return eft_fail("%s: text_config.model_type \"%s\" is not a Gemma 4 text model "
                            "(gemma4_text). Fix it.",
                            file, tmt);
        c->has_vision = cJSON_IsObject(item(&top, "vision_config"));
        c->has_audio = cJSON_IsObject(item(&top, "audio_config"));
    }
    if (parse_text(&text, c)) goto fail;
    if (c->wrapper) {
        /* The wrapper's own tie flag is the one transformers applies; its eos list (the -it
         * checkpoints' [1, 106]) wins over text_config's. */
        bool tie_top;
        if (get_bool(&top, "tie_word_embeddings", true, &tie_top)) goto fail;
        if (item(&top, "tie_word_embeddings") && item(&text, "tie_word_embeddings") &&
            tie_top != c->tie_word_embeddings) {
            eft_fail("%s: tie_word_embeddings is %s at the top level but %s in text_config. Make "
                     "them agree (Gemma 4 ties the LM head: true).",
                     file, tie_top ? "true" : "false", c->tie_word_embeddings ? "true" : "false");
            goto fail;
        }
        c->tie_word_embeddings = tie_top;
        if (get_eos(&top, c->vocab_size, c)) goto fail;
    }
    return 0;
fail:
    g4_config_free(c);
    return -1;
}

int g4_config_load(g4_config *c, const char *path) {
    memset(c, 0, sizeof *c);
    cJSON *root = eft_json_parse_file(path);
    if (!root) return -1;
    int rc = g4_config_parse(c, root, path);
    cJSON_Delete(root);
    return rc;
}

void g4_config_free(g4_config *c) {
    eft_free(c->layer_types);
    eft_free(c->layer_head_dim);
    eft_free(c->layer_num_kv);
    c->layer_types = NULL;
    c->layer_head_dim = c->layer_num_kv = NULL;
}
