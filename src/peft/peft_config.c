/* peft_config.c: adapter_config.json, written as PEFT 0.19.1 writes it and read strictly (see
 * peft_io.h). The tensors are peft_io.c's. */
#include "peft/peft_io.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"
#include "io/json.h"
#include "peft/lora_target.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void peft_config_free(peft_config *pc) {
    eft_free(pc->base_model);
    eft_free(pc->target_regex);
    for (int i = 0; i < pc->n_targets; i++) eft_free(pc->target_list[i]);
    eft_free(pc->target_list);
    for (int i = 0; i < pc->n_target_params; i++) eft_free(pc->target_params[i]);
    eft_free(pc->target_params);
    memset(pc, 0, sizeof *pc);
}

static void set_list(peft_config *pc, int n) {
    pc->n_targets = n;
    pc->target_list = eft_calloc((size_t)EFT_MAX(n, 1), sizeof *pc->target_list);
}

void peft_config_from_run(peft_config *pc, const eft_config *c, const lora_adapter *a) {
    memset(pc, 0, sizeof *pc);
    pc->r = a->spec.r;
    pc->alpha = a->spec.alpha;
    pc->dropout = a->spec.dropout;
    pc->rslora = a->spec.rslora;
    pc->init = a->spec.init == LORA_INIT_EMPTY ? LORA_INIT_DEFAULT : a->spec.init;
    pc->base_model = c->base_model.v ? eft_strdup(c->base_model.v) : NULL;
    const cfg_strlist *tm = &c->lora_target_modules;
    bool all_linear =
        (c->lora_target_linear.set && c->lora_target_linear.v) ||
        (tm->set && tm->single_string && tm->n == 1 && !strcmp(tm->v[0], "all-linear"));
    if (!all_linear && tm->set && tm->single_string && tm->n == 1) {
        pc->target_regex = eft_strdup(tm->v[0]);
    } else if (!all_linear && tm->set) {
        set_list(pc, tm->n);
        for (int i = 0; i < tm->n; i++) pc->target_list[i] = eft_strdup(tm->v[i]);
    } else {
        set_list(pc, a->n_modules);
        int n = 0;
        for (int k = 0; k < a->n_modules; k++)
            if (a->tensors[2 * k].base->count == 1) /* experts are parameters, listed below */
                pc->target_list[n++] = eft_strdup(a->tensors[2 * k].base->module);
        pc->n_targets = n;
    }
    const cfg_strlist *tp = &c->lora_target_parameters;
    if (tp->set && tp->n) {
        pc->n_target_params = tp->n;
        pc->target_params = eft_calloc((size_t)tp->n, sizeof *pc->target_params);
        for (int i = 0; i < tp->n; i++) pc->target_params[i] = eft_strdup(tp->v[i]);
    }
}

/* ---- writing ---------------------------------------------------------------------------- */

/* One "key": value line of the object; the value already rendered. */
typedef struct entry {
    const char *key;
    char *value;
} entry;

static int by_key(const void *a, const void *b) {
    return strcmp(((const entry *)a)->key, ((const entry *)b)->key);
}

static char *str_value(const char *s) {
    eft_buf b = {0};
    if (s)
        eft_buf_json_str(&b, s);
    else
        eft_buf_puts(&b, "null");
    return eft_buf_take(&b);
}

/* An integer as Python writes an int, anything else as it writes a float. */
static char *num_value(double v, bool as_int) {
    eft_buf b = {0};
    if (as_int && v == floor(v) && fabs(v) < 9007199254740992.0)
        eft_buf_printf(&b, "%.0f", v);
    else
        eft_buf_json_double(&b, v);
    return eft_buf_take(&b);
}

/* A list of strings laid out as json.dumps(indent=2) lays it out one level down. */
static char *list_value(char *const *items, int n) {
    if (n == 0) return eft_strdup("[]");
    eft_buf b = {0};
    eft_buf_puts(&b, "[\n");
    for (int i = 0; i < n; i++) {
        eft_buf_puts(&b, "    ");
        eft_buf_json_str(&b, items[i]);
        eft_buf_puts(&b, i + 1 < n ? ",\n" : "\n");
    }
    eft_buf_puts(&b, "  ]");
    return eft_buf_take(&b);
}

/* target_modules: a string or a list. */
static char *targets_value(const peft_config *pc) {
    if (pc->target_regex) return str_value(pc->target_regex);
    return list_value(pc->target_list, pc->n_targets);
}

static const char *init_name(lora_init init) {
    return init == LORA_INIT_GAUSSIAN ? "\"gaussian\""
           : init == LORA_INIT_LINEAR ? "false"
                                      : "true";
}

/* Every field of PEFT 0.19.1's LoraConfig.to_dict(), sorted and indented as its save_pretrained
 * writes them (json.dumps(indent=2, sort_keys=True)). Fields eft does not use are written at
 * PEFT's defaults so that no reader has to guess. peft_version is left out: PEFT fills in its
 * own, and its LoRA loading never reads it. (PEFT 0.21's velora, monteclora and kasa configs are
 * left out too: 0.19 would warn about keys it does not know.) */
char *peft_config_json(const peft_config *pc) {
    entry e[] = {
        {"alora_invocation_tokens", eft_strdup("null")},
        {"alpha_pattern", eft_strdup("{}")},
        {"arrow_config", eft_strdup("null")},
        {"auto_mapping", eft_strdup("null")},
        {"base_model_name_or_path", str_value(pc->base_model)},
        {"bias", str_value("none")},
        {"corda_config", eft_strdup("null")},
        {"ensure_weight_tying", eft_strdup("false")},
        {"eva_config", eft_strdup("null")},
        {"exclude_modules", eft_strdup("null")},
        {"fan_in_fan_out", eft_strdup("false")},
        {"inference_mode", eft_strdup("true")},
        {"init_lora_weights", eft_strdup(init_name(pc->init))},
        {"layer_replication", eft_strdup("null")},
        {"layers_pattern", eft_strdup("null")},
        {"layers_to_transform", eft_strdup("null")},
        {"loftq_config", eft_strdup("{}")},
        {"lora_alpha", num_value(pc->alpha, true)},
        {"lora_bias", eft_strdup("false")},
        {"lora_dropout", num_value(pc->dropout, false)},
        {"lora_ga_config", eft_strdup("null")},
        {"megatron_config", eft_strdup("null")},
        {"megatron_core", str_value("megatron.core")},
        {"modules_to_save", eft_strdup("null")},
        {"peft_type", str_value("LORA")},
        {"qalora_group_size", eft_strdup("16")},
        {"r", num_value(pc->r, true)},
        {"rank_pattern", eft_strdup("{}")},
        {"revision", eft_strdup("null")},
        {"target_modules", targets_value(pc)},
        {"target_parameters", pc->n_target_params
                                  ? list_value(pc->target_params, pc->n_target_params)
                                  : eft_strdup("null")},
        {"task_type", str_value("CAUSAL_LM")},
        {"trainable_token_indices", eft_strdup("null")},
        {"use_bdlora", eft_strdup("null")},
        {"use_dora", eft_strdup("false")},
        {"use_qalora", eft_strdup("false")},
        {"use_rslora", eft_strdup(pc->rslora ? "true" : "false")},
    };
    size_t n = EFT_ARRAY_LEN(e);
    qsort(e, n, sizeof e[0], by_key);
    eft_buf b = {0};
    eft_buf_puts(&b, "{\n");
    for (size_t i = 0; i < n; i++) {
        eft_buf_puts(&b, "  ");
        eft_buf_json_str(&b, e[i].key);
        eft_buf_printf(&b, ": %s%s\n", e[i].value, i + 1 < n ? "," : "");
        eft_free(e[i].value);
    }
    eft_buf_puts(&b, "}");
    return eft_buf_take(&b);
}

/* ---- reading ---------------------------------------------------------------------------- */

/* True when a key is absent or holds its "not used" value: null, false, or an empty list or
 * object. */
static bool unused(const cJSON *v) {
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return true;
    if ((cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child) return true;
    return false;
}

/* Keys whose use changes the adapter's arithmetic or its set of weights, which eft does not
 * implement: each must be absent or unused. */
static const struct {
    const char *key, *what;
} refused[] = {
    {"use_dora", "DoRA"},
    {"fan_in_fan_out", "transposed (Conv1D) base weights"},
    {"modules_to_save", "fully trained module copies"},
    {"rank_pattern", "per-module ranks"},
    {"alpha_pattern", "per-module alphas"},
    {"layers_to_transform", "a layer subset"},
    {"exclude_modules", "excluded modules"},
    {"layer_replication", "layer replication"},
    {"lora_bias", "a bias on lora_B"},
    {"trainable_token_indices", "trainable token embeddings"},
    {"use_qalora", "QA-LoRA"},
    {"alora_invocation_tokens", "activated LoRA"},
    {"use_bdlora", "block-diagonal LoRA"},
    {"arrow_config", "Arrow routing"},
    {"megatron_config", "Megatron parallel layers"},
    {"velora_config", "VeLoRA"},
    {"monteclora_config", "MonteCLoRA"},
    {"kasa_config", "KaSA"},
};

/* target_parameters: absent, null or a list of strings. */
static int read_target_params(const cJSON *root, peft_config *pc, const char *path) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "target_parameters");
    if (!t || cJSON_IsNull(t)) return 0;
    if (!cJSON_IsArray(t))
        return eft_fail("%s: target_parameters is not a list. List parameter names such as "
                        "\"experts.gate_up_proj\", or set it to null.",
                        path);
    pc->n_target_params = cJSON_GetArraySize(t);
    pc->target_params = eft_calloc((size_t)EFT_MAX(pc->n_target_params, 1), sizeof(char *));
    int i = 0;
    for (const cJSON *v = t->child; v; v = v->next, i++) {
        if (!cJSON_IsString(v))
            return eft_fail("%s: target_parameters[%d] is not a string. List parameter names "
                            "such as \"experts.gate_up_proj\".",
                            path, i);
        pc->target_params[i] = eft_strdup(v->valuestring);
    }
    return 0;
}

static int read_targets(const cJSON *root, peft_config *pc, const char *path) {
    if (read_target_params(root, pc, path)) return -1;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "target_modules");
    if (cJSON_IsString(t)) {
        pc->target_regex = eft_strdup(t->valuestring);
        if (lora_match_regex(pc->target_regex, "") < 0) {
            eft_err_context("%s", path);
            return -1;
        }
        return 0;
    }
    if (cJSON_IsArray(t)) {
        set_list(pc, cJSON_GetArraySize(t));
        int i = 0;
        for (const cJSON *v = t->child; v; v = v->next, i++) {
            if (!cJSON_IsString(v))
                return eft_fail("%s: target_modules[%d] is not a string. List module names such "
                                "as \"q_proj\".",
                                path, i);
            pc->target_list[i] = eft_strdup(v->valuestring);
        }
        return 0;
    }
    return eft_fail("%s: target_modules is %s; eft needs the list of module names or the regex "
                    "the adapter was trained with. Add it, e.g. \"target_modules\": [\"q_proj\", "
                    "\"v_proj\"].",
                    path, t ? "not a string or a list" : "missing");
}

static int read_config(const cJSON *root, peft_config *pc, const char *path) {
    if (!cJSON_IsObject(root))
        return eft_fail("%s: expected a JSON object (PEFT's LoraConfig).", path);
    const char *type;
    if (eft_json_str(root, "peft_type", &type, path)) return -1;
    if (strcmp(type, "LORA"))
        return eft_fail("%s: peft_type is \"%s\"; eft reads LoRA adapters (\"peft_type\": "
                        "\"LORA\") only.",
                        path, type);
    const char *task = NULL;
    if (eft_json_str_opt(root, "task_type", &task, path)) return -1;
    if (task && strcmp(task, "CAUSAL_LM"))
        return eft_fail("%s: task_type is \"%s\"; eft trains causal language models "
                        "(\"CAUSAL_LM\") only.",
                        path, task);
    for (size_t i = 0; i < EFT_ARRAY_LEN(refused); i++)
        if (!unused(cJSON_GetObjectItemCaseSensitive(root, refused[i].key)))
            return eft_fail("%s: \"%s\" is set: %s, which eft does not support. Use an adapter "
                            "trained without it.",
                            path, refused[i].key, refused[i].what);
    const char *bias = "none";
    if (eft_json_str_opt(root, "bias", &bias, path)) return -1;
    if (strcmp(bias, "none"))
        return eft_fail("%s: bias is \"%s\"; eft trains no biases (\"bias\": \"none\").", path,
                        bias);

    int64_t r = 8; /* PEFT's defaults for absent keys */
    double alpha = 8, dropout = 0;
    bool rslora = false;
    if (eft_json_int_opt(root, "r", &r, path) ||
        eft_json_num_opt(root, "lora_alpha", &alpha, path) ||
        eft_json_num_opt(root, "lora_dropout", &dropout, path) ||
        eft_json_bool_opt(root, "use_rslora", &rslora, path))
        return -1;
    if (r < 1 || r > (1 << 20))
        return eft_fail("%s: r is %lld; it must be at least 1.", path, (long long)r);
    if (!(alpha > 0) || !isfinite(alpha))
        return eft_fail("%s: lora_alpha is %g; it must be positive.", path, alpha);
    if (!(dropout >= 0 && dropout < 1))
        return eft_fail("%s: lora_dropout is %g; it must be in [0, 1).", path, dropout);
    pc->r = (int)r, pc->alpha = alpha, pc->dropout = dropout, pc->rslora = rslora;

    const cJSON *init = cJSON_GetObjectItemCaseSensitive(root, "init_lora_weights");
    if (!init || cJSON_IsTrue(init))
        pc->init = LORA_INIT_DEFAULT;
    else if (cJSON_IsFalse(init))
        pc->init = LORA_INIT_LINEAR;
    else if (cJSON_IsString(init) && !strcmp(init->valuestring, "gaussian"))
        pc->init = LORA_INIT_GAUSSIAN;
    else
        return eft_fail("%s: init_lora_weights is %s%s%s; eft reads adapters initialised with "
                        "true, false or \"gaussian\" (PEFT re-runs other schemes, such as PiSSA, "
                        "on the base weights when it loads them).",
                        path, cJSON_IsString(init) ? "\"" : "",
                        cJSON_IsString(init) ? init->valuestring : "not a boolean or a string",
                        cJSON_IsString(init) ? "\"" : "");
    const char *base = NULL;
    if (eft_json_str_opt(root, "base_model_name_or_path", &base, path)) return -1;
    pc->base_model = base ? eft_strdup(base) : NULL;
    return read_targets(root, pc, path);
}

int peft_read_config(const char *dir, peft_config *pc) {
    memset(pc, 0, sizeof *pc);
    char *path = eft_path_join(dir, PEFT_CONFIG_NAME);
    int rc;
    if (!eft_is_file(path)) {
        rc = eft_fail("%s: not found. An adapter folder (PEFT's save_pretrained, or eft's) holds "
                      "adapter_config.json and adapter_model.safetensors; check the path.",
                      path);
    } else {
        cJSON *root = eft_json_parse_file(path);
        rc = root ? read_config(root, pc, path) : -1;
        cJSON_Delete(root);
    }
    if (rc) peft_config_free(pc);
    eft_free(path);
    return rc;
}
