/* lora_target.c: PEFT's module matching over eft's tensor list (see lora_target.h). */
#include "peft/lora_target.h"

#include "base/err.h"

#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* A compiled full-match pattern; NULL with an error recorded on a syntax error. */
static pcre2_code *compile(const char *regex, cfg_pos at, const char *key) {
    int code;
    PCRE2_SIZE off;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED,
                      PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        if (at.file)
            cfg_fail_at(at, key, "not a valid regular expression: %s at offset %zu of '%s'",
                        (const char *)msg, (size_t)off, regex);
        else
            eft_fail("%s: not a valid regular expression: %s at offset %zu of '%s'", key,
                     (const char *)msg, (size_t)off, regex);
    }
    return re;
}

static bool full_match(pcre2_code *re, pcre2_match_data *md, const char *s) {
    return pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL) >= 0;
}

int lora_match_regex(const char *regex, const char *path) {
    pcre2_code *re = compile(regex, (cfg_pos){0}, "target_modules");
    if (!re) return -1;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int r = full_match(re, md, path);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return r;
}

bool lora_match_suffix(const char *const *items, int n, const char *path) {
    size_t lp = strlen(path);
    for (int i = 0; i < n; i++) {
        size_t li = strlen(items[i]);
        if (!strcmp(path, items[i])) return true;
        if (lp > li && path[lp - li - 1] == '.' && !strcmp(path + lp - li, items[i])) return true;
    }
    return false;
}

/* The linear maps LoRA can wrap: nn.Linear modules of the text model, the LM head excepted. */
static bool is_module(const g4_tensor *t) {
    return t->linear != G4_LIN_NONE && t->linear != G4_LIN_LM_HEAD &&
           t->linear != G4_LIN_EXPERTS_GATE_UP && t->linear != G4_LIN_EXPERTS_DOWN;
}

static bool is_expert_param(const g4_tensor *t) {
    return t->linear == G4_LIN_EXPERTS_GATE_UP || t->linear == G4_LIN_EXPERTS_DOWN;
}

/* A path to show in messages: the first q_proj (every model has one), else any module. */
static const char *example_path(const g4_tensors *ts) {
    for (int i = 0; i < ts->n; i++)
        if (ts->t[i].linear == G4_LIN_Q) return ts->t[i].module;
    for (int i = 0; i < ts->n; i++)
        if (is_module(&ts->t[i])) return ts->t[i].module;
    return "(none)";
}

int lora_select(const eft_config *c, const g4_tensors *ts, bool *sel) {
    memset(sel, 0, (size_t)ts->n * sizeof *sel);
    const cfg_strlist *tm = &c->lora_target_modules, *tp = &c->lora_target_parameters;
    bool all_linear = c->lora_target_linear.set && c->lora_target_linear.v;
    if (tm->set && tm->single_string && tm->n == 1 && !strcmp(tm->v[0], "all-linear"))
        all_linear = true;
    if (!all_linear && !(tm->set && tm->n) && !(tp->set && tp->n))
        return eft_fail("%s: adapter: %s needs lora_target_modules (a regex or a list such as "
                        "[q_proj, k_proj, v_proj, o_proj]), lora_target_linear: true, or "
                        "lora_target_parameters.",
                        c->path ? c->path : "config", c->adapter.v ? c->adapter.v : "lora");

    pcre2_code *re = NULL;
    pcre2_match_data *md = NULL;
    if (!all_linear && tm->set && tm->single_string && tm->n == 1) {
        re = compile(tm->v[0], tm->at, "lora_target_modules");
        if (!re) return -1;
        md = pcre2_match_data_create_from_pattern(re, NULL);
    }
    int n_modules = 0, n_params = 0;
    for (int i = 0; i < ts->n; i++) {
        const g4_tensor *t = &ts->t[i];
        if (is_module(t)) {
            bool hit = all_linear;
            if (!hit && re) hit = full_match(re, md, t->module);
            if (!hit && tm->set && !tm->single_string)
                hit = lora_match_suffix((const char *const *)tm->v, tm->n, t->module);
            sel[i] = hit;
            n_modules += hit;
        } else if (is_expert_param(t) && tp->set) {
            sel[i] = lora_match_suffix((const char *const *)tp->v, tp->n, t->module);
            n_params += sel[i];
        }
    }
    if (md) pcre2_match_data_free(md);
    if (re) pcre2_code_free(re);

    if (tm->set && tm->n && !all_linear && n_modules == 0)
        return cfg_fail_at(tm->at, "lora_target_modules",
                           "matches none of the model's linear modules. PEFT %s module paths "
                           "such as '%s'.",
                           tm->single_string ? "full-matches the pattern against"
                                             : "matches name suffixes of",
                           example_path(ts));
    if (tp->set && tp->n && n_params == 0)
        return cfg_fail_at(tp->at, "lora_target_parameters",
                           "matches no parameter of this model%s.",
                           c->lora_target_parameters.n ? " (only MoE models such as 26B-A4B "
                                                         "have experts.gate_up_proj and "
                                                         "experts.down_proj)"
                                                       : "");
    return n_modules + n_params;
}
