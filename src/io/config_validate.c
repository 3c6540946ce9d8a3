/* config_validate.c: the rules that involve more than one key, or a key's absence.
 *
 * Axolotl's pydantic validators (utils/schemas/validation.py, peft.py) and the limits of the
 * training arithmetic (training-math.md) decide these. A key's own type and range were checked
 * when it was read; here the first broken rule is the error, at the place of the key at fault
 * (or naming the file when the fault is a missing key). Like Axolotl's "before" validators,
 * "set" means given with a non-zero value: warmup_steps: 0 next to warmup_ratio is fine.
 */
#include "io/config.h"

#include "base/err.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

/* The place of a value, or the file itself when the key was not given. */
static cfg_pos place(const eft_config *c, cfg_pos at) {
    return at.file ? at : (cfg_pos){c->path, 0, 0};
}

static bool is(const cfg_str *s, const char *v) {
    return s->v && !strcmp(s->v, v);
}
static bool given_i(const cfg_int *x) {
    return x->set && x->v != 0;
}
static bool given_f(const cfg_float *x) {
    return x->set && x->v != 0;
}

static int check_required(const eft_config *c) {
    if (!c->base_model.set)
        return eft_fail("%s: base_model is missing. Set it to a local model folder or a Hugging "
                        "Face id, e.g. base_model: google/gemma-4-31B.",
                        c->path);
    if (!c->datasets.set)
        return eft_fail("%s: datasets is missing. Add at least one, e.g. datasets: [{path: "
                        "data.jsonl, type: chat_template}].",
                        c->path);
    if (c->datasets.n == 0)
        return cfg_fail_at(c->datasets.at, "datasets",
                           "the list is empty; add at least one "
                           "dataset (- path: ..., type: ...).");
    if (!c->learning_rate.set)
        return eft_fail("%s: learning_rate is missing. Set it, e.g. learning_rate: 0.0002.",
                        c->path);
    return 0;
}

static int check_datasets(const eft_config *c, const cfg_datasets *ds, const char *what) {
    for (int i = 0; i < ds->n; i++) {
        const cfg_dataset *d = &ds->v[i];
        char *name = eft_asprintf("%s[%d]", what, i);
        int rc = 0;
        if (!d->path.set)
            rc = cfg_fail_at(place(c, d->at), name,
                             "path is missing. Give a local file or folder, "
                             "or a Hub dataset id (path: mlabonne/FineTome-100k).");
        else if (d->shards_idx.set && !d->shards.set)
            rc = cfg_fail_at(d->shards_idx.at, name, "shards_idx needs shards (the count).");
        else if (d->shards.set && d->shards_idx.v >= d->shards.v)
            rc = cfg_fail_at(place(c, d->shards_idx.at), name,
                             "shards_idx %lld is out of range for shards: %lld (0 to %lld).",
                             (long long)d->shards_idx.v, (long long)d->shards.v,
                             (long long)d->shards.v - 1);
        for (int j = 0; rc == 0 && j < d->message_property_mappings.n; j++) {
            const cfg_map_item *it = &d->message_property_mappings.items[j];
            if (it->is_list || it->v[0].type != CFG_S_STR)
                rc = cfg_fail_at(it->key_at, name,
                                 "message_property_mappings.%s must name a "
                                 "field (a string), e.g. role: from.",
                                 it->key);
        }
        for (int j = 0; rc == 0 && j < d->roles.n; j++) {
            const cfg_map_item *it = &d->roles.items[j];
            for (int k = 0; rc == 0 && k < it->n; k++)
                if (it->v[k].type != CFG_S_STR)
                    rc = cfg_fail_at(it->v[k].at, name,
                                     "roles.%s must list role names as "
                                     "strings, e.g. %s: [gpt, model].",
                                     it->key, it->key);
            if (rc == 0 && !it->is_list)
                rc = cfg_fail_at(it->key_at, name, "roles.%s must be a list, e.g. %s: [%s].",
                                 it->key, it->key, it->v[0].text);
        }
        eft_free(name);
        if (rc) return rc;
    }
    return 0;
}

static int check_adapter(const eft_config *c) {
    bool lora = c->adapter.v != NULL;
    if (is(&c->adapter, "qlora") && !c->load_in_4bit.v)
        return cfg_fail_at(c->adapter.at, "adapter",
                           "qlora needs load_in_4bit: true (QLoRA "
                           "trains against a 4-bit base). Add it, or use adapter: lora.");
    if (c->load_in_4bit.v && !lora)
        return cfg_fail_at(c->load_in_4bit.at, "load_in_4bit",
                           "a 4-bit base cannot be trained "
                           "without an adapter. Set adapter: qlora, or remove load_in_4bit.");
    if (c->quantize_moe_experts.v && !(lora && c->load_in_4bit.v))
        return cfg_fail_at(c->quantize_moe_experts.at, "quantize_moe_experts",
                           "needs an adapter and load_in_4bit: true.");
    if (c->quantize_moe_experts.v && c->lora_target_linear.v)
        return cfg_fail_at(c->lora_target_linear.at, "lora_target_linear",
                           "cannot be used with quantize_moe_experts; list the modules in "
                           "lora_target_modules instead.");
    if (lora && !c->lora_model_dir.set) {
        if (!c->lora_r.set)
            return cfg_fail_at(c->adapter.at, "adapter",
                               "%s needs lora_r (the rank), e.g. "
                               "lora_r: 16.",
                               c->adapter.v);
        if (!c->lora_alpha.set)
            return cfg_fail_at(c->adapter.at, "adapter",
                               "%s needs lora_alpha, e.g. "
                               "lora_alpha: 32 (scale alpha/r).",
                               c->adapter.v);
    }
    if (c->lora_dropout.v < 0 || c->lora_dropout.v >= 1)
        return cfg_fail_at(place(c, c->lora_dropout.at), "lora_dropout",
                           "must be in [0, 1), found %g.", c->lora_dropout.v);
    if (c->lora_target_parameters.n && c->lora_dropout.v != 0)
        return cfg_fail_at(c->lora_dropout.at, "lora_dropout",
                           "must be 0 with lora_target_parameters (expert LoRA has no dropout).");
    const cfg_map *pats[] = {&c->lora_rank_pattern, &c->lora_alpha_pattern};
    const char *names[] = {"lora_rank_pattern", "lora_alpha_pattern"};
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < pats[p]->n; i++) {
            int64_t v = 0;
            if (cfg_map_int(pats[p], pats[p]->items[i].key, &v, names[p])) return -1;
            if (v < 1)
                return cfg_fail_at(pats[p]->items[i].v[0].at, names[p], "%s: must be at least 1.",
                                   pats[p]->items[i].key);
        }
    if (c->peft_autocast_adapter_dtype.set && !c->peft_autocast_adapter_dtype.v)
        return cfg_fail_at(c->peft_autocast_adapter_dtype.at, "peft_autocast_adapter_dtype",
                           "false is not supported yet by eft (adapters are kept in fp32). "
                           "Remove it.");
    return 0;
}

static int check_bnb(const eft_config *c) {
    const char *what = "bnb_config_kwargs";
    const cfg_map *m = &c->bnb_config_kwargs;
    bool dq;
    const char *s = NULL;
    if (cfg_map_bool(m, "bnb_4bit_use_double_quant", &dq, what)) return -1;
    if (cfg_map_str(m, "bnb_4bit_quant_type", &s, what)) return -1;
    if (s && strcmp(s, "nf4"))
        return cfg_fail_at(cfg_map_find(m, "bnb_4bit_quant_type")->v[0].at,
                           "bnb_config_kwargs.bnb_4bit_quant_type",
                           "%s is not supported yet by "
                           "eft; use nf4.",
                           s);
    s = NULL;
    if (cfg_map_str(m, "bnb_4bit_compute_dtype", &s, what)) return -1;
    if (s && strcmp(s, "bfloat16") && strcmp(s, "bf16") && strcmp(s, "float32"))
        return cfg_fail_at(cfg_map_find(m, "bnb_4bit_compute_dtype")->v[0].at,
                           "bnb_config_kwargs.bnb_4bit_compute_dtype",
                           "%s is not supported yet "
                           "by eft; use bfloat16.",
                           s);
    return 0;
}

static int check_schedule(const eft_config *c) {
    if (c->micro_batch_size.v < 1)
        return cfg_fail_at(place(c, c->micro_batch_size.at), "micro_batch_size",
                           "must be at least 1.");
    if (given_i(&c->gradient_accumulation_steps) && given_i(&c->batch_size))
        return cfg_fail_at(c->batch_size.at, "batch_size",
                           "set only one of "
                           "gradient_accumulation_steps and batch_size (batch_size = "
                           "micro_batch_size x gradient_accumulation_steps).");
    if (c->batch_size.set && c->batch_size.v % c->micro_batch_size.v)
        return cfg_fail_at(c->batch_size.at, "batch_size",
                           "%lld is not a multiple of "
                           "micro_batch_size (%lld).",
                           (long long)c->batch_size.v, (long long)c->micro_batch_size.v);
    if (given_i(&c->warmup_steps) && given_f(&c->warmup_ratio))
        return cfg_fail_at(c->warmup_ratio.at, "warmup_ratio",
                           "warmup_steps and warmup_ratio "
                           "are mutually exclusive; keep one.");
    if (c->warmup_ratio.v > 1)
        return cfg_fail_at(c->warmup_ratio.at, "warmup_ratio", "must be in [0, 1], found %g.",
                           c->warmup_ratio.v);
    if (c->adam_beta1.v < 0 || c->adam_beta1.v >= 1)
        return cfg_fail_at(place(c, c->adam_beta1.at), "adam_beta1", "must be in [0, 1).");
    if (c->adam_beta2.v < 0 || c->adam_beta2.v >= 1)
        return cfg_fail_at(place(c, c->adam_beta2.at), "adam_beta2", "must be in [0, 1).");
    if (c->cosine_min_lr_ratio.set &&
        (c->cosine_min_lr_ratio.v < 0 || c->cosine_min_lr_ratio.v > 1))
        return cfg_fail_at(c->cosine_min_lr_ratio.at, "cosine_min_lr_ratio", "must be in [0, 1].");
    const cfg_map *kw = &c->lr_scheduler_kwargs;
    const char *what = "lr_scheduler_kwargs";
    double x;
    for (int i = 0; i < kw->n; i++)
        if (strcmp(kw->items[i].key, "name") && cfg_map_float(kw, kw->items[i].key, &x, what))
            return -1;
    if (is(&c->lr_scheduler, "cosine_with_min_lr")) {
        bool rate = cfg_map_find(kw, "min_lr_rate"), lr = cfg_map_find(kw, "min_lr");
        if (rate == lr)
            return cfg_fail_at(place(c, rate ? kw->at : c->lr_scheduler.at), "lr_scheduler",
                               "cosine_with_min_lr needs exactly one of min_lr_rate (a fraction "
                               "of learning_rate) or min_lr in lr_scheduler_kwargs%s.",
                               rate ? ", not both"
                                    : ", e.g. lr_scheduler_kwargs: {min_lr_rate: 0.1}");
    }
    if (is(&c->lr_scheduler, "polynomial")) {
        double lr_end = 1e-7;
        if (cfg_map_float(kw, "lr_end", &lr_end, what)) return -1;
        if (c->learning_rate.v <= lr_end)
            return cfg_fail_at(c->learning_rate.at, "learning_rate",
                               "polynomial decays to lr_end "
                               "= %g, which must be below learning_rate.",
                               lr_end);
    }
    if (c->sample_packing_eff_est.set &&
        (c->sample_packing_eff_est.v <= 0 || c->sample_packing_eff_est.v > 1))
        return cfg_fail_at(c->sample_packing_eff_est.at, "sample_packing_eff_est",
                           "must be in (0, 1].");
    return 0;
}

static int check_eval_save(const eft_config *c) {
    if (c->val_set_size.v < 0 || c->val_set_size.v >= 1)
        return cfg_fail_at(c->val_set_size.at, "val_set_size",
                           "must be a fraction in [0, 1), "
                           "found %g.",
                           c->val_set_size.v);
    if (c->test_datasets.set && c->val_set_size.v > 0)
        return cfg_fail_at(c->val_set_size.at, "val_set_size",
                           "a non-zero val_set_size cannot "
                           "be used with test_datasets; set it to 0.");
    if (given_i(&c->evals_per_epoch) && c->eval_steps.set)
        return cfg_fail_at(c->eval_steps.at, "eval_steps",
                           "eval_steps and evals_per_epoch are "
                           "mutually exclusive; keep one.");
    if (given_i(&c->saves_per_epoch) && c->save_steps.set)
        return cfg_fail_at(c->save_steps.at, "save_steps",
                           "save_steps and saves_per_epoch are "
                           "mutually exclusive; keep one.");
    if (c->eval_steps.set && c->eval_strategy.set && !is(&c->eval_strategy, "steps"))
        return cfg_fail_at(c->eval_strategy.at, "eval_strategy",
                           "must be steps (or unset) when "
                           "eval_steps is set.");
    if (given_i(&c->evals_per_epoch) && c->eval_strategy.set && !is(&c->eval_strategy, "steps"))
        return cfg_fail_at(c->eval_strategy.at, "eval_strategy",
                           "must be steps (or unset) with "
                           "evals_per_epoch.");
    if (c->save_steps.set && c->save_strategy.set && !is(&c->save_strategy, "steps"))
        return cfg_fail_at(c->save_strategy.at, "save_strategy",
                           "must be steps (or unset) when "
                           "save_steps is set.");
    if (c->val_set_size.v == 0 && !c->test_datasets.set &&
        (c->eval_steps.set || (c->eval_strategy.set && !is(&c->eval_strategy, "no")))) {
        const cfg_pos at = c->eval_steps.set ? c->eval_steps.at : c->eval_strategy.at;
        return cfg_fail_at(at, c->eval_steps.set ? "eval_steps" : "eval_strategy",
                           "there is no eval data (val_set_size is 0 and no test_datasets). Set "
                           "val_set_size, add test_datasets, or remove it.");
    }
    if (c->save_safetensors.set && !c->save_safetensors.v)
        return cfg_fail_at(c->save_safetensors.at, "save_safetensors",
                           "eft writes safetensors "
                           "only; remove it or set it to true.");
    const cfg_map *dc = &c->dynamic_checkpoint;
    bool b;
    int64_t i;
    const char *s;
    if (cfg_map_bool(dc, "enabled", &b, "dynamic_checkpoint") ||
        cfg_map_int(dc, "check_interval", &i, "dynamic_checkpoint") ||
        cfg_map_str(dc, "trigger_file_path", &s, "dynamic_checkpoint"))
        return -1;
    return 0;
}

static int check_tokens(const eft_config *c) {
    static const char *known[] = {"bos_token", "eos_token", "pad_token", "unk_token",
                                  "additional_special_tokens"};
    const cfg_map *m = &c->special_tokens;
    for (int i = 0; i < m->n; i++) {
        const cfg_map_item *it = &m->items[i];
        size_t k = 0;
        while (k < EFT_ARRAY_LEN(known) && strcmp(known[k], it->key)) k++;
        if (k == EFT_ARRAY_LEN(known))
            return cfg_fail_at(it->key_at, "special_tokens",
                               "unknown token \"%s\"; expected "
                               "bos_token, eos_token, pad_token, unk_token or "
                               "additional_special_tokens.",
                               it->key);
        bool list = k == EFT_ARRAY_LEN(known) - 1;
        if (it->is_list != list)
            return cfg_fail_at(it->key_at, "special_tokens", "%s must be %s.", it->key,
                               list ? "a list of strings" : "one token string");
        for (int j = 0; j < it->n; j++)
            if (it->v[j].type != CFG_S_STR && it->v[j].type != CFG_S_NULL)
                return cfg_fail_at(it->v[j].at, "special_tokens",
                                   "%s: expected a token string, "
                                   "found %s. Quote it.",
                                   it->key, it->v[j].text);
    }
    return 0;
}

int cfg_validate(const eft_config *c) {
    if (check_required(c) || check_datasets(c, &c->datasets, "datasets") ||
        check_datasets(c, &c->test_datasets, "test_datasets") || check_adapter(c) || check_bnb(c) ||
        check_schedule(c) || check_eval_save(c) || check_tokens(c))
        return -1;
    return 0;
}
