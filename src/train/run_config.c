/* run_config.c: config + plan -> run shape, and the features this build has (see run_config.h). */
#include "train/run_config.h"

#include "base/err.h"
#include "base/threads.h"
#include "peft/lora_target.h"

#include <string.h>

static bool is_8bit_optimizer(const char *o) {
    return o && (!strcmp(o, "adamw_torch_8bit") || !strcmp(o, "adamw_bnb_8bit") ||
                 !strcmp(o, "adamw_8bit") || !strcmp(o, "paged_adamw_8bit"));
}

static bool truthy(const cfg_str *s) {
    return s->v && strcmp(s->v, "false") != 0;
}

int trn_run_shape(const eft_config *c, const g4_plan *p, const g4_tensors *ts, g4_run_shape *s) {
    g4_run_shape_default(s);
    s->seq_len = c->sequence_len.v;
    s->micro_batch = c->micro_batch_size.v;
    s->weights = c->load_in_4bit.v ? G4_WEIGHTS_NF4 : G4_WEIGHTS_BF16;
    s->quantize_moe_experts = c->quantize_moe_experts.v;
    s->optim = is_8bit_optimizer(c->optimizer.v) ? G4_OPTIM_ADAMW_8BIT : G4_OPTIM_ADAMW;
    s->recompute = truthy(&c->gradient_checkpointing);
    s->threads = eft_threads();
    if (!c->adapter.v || !*c->adapter.v) {
        s->train = G4_TRAIN_FULL;
        s->lora_targets = 0;
        return 0;
    }
    s->train = G4_TRAIN_LORA;
    s->lora_r = (int)c->lora_r.v;
    bool *sel = eft_calloc((size_t)ts->n, sizeof *sel);
    int n = lora_select(c, ts, sel);
    s->lora_targets = 0;
    for (int i = 0; n > 0 && i < ts->n; i++)
        if (sel[i]) s->lora_targets |= g4_target_bit(ts->t[i].linear);
    eft_free(sel);
    (void)p;
    return n < 0 ? -1 : 0;
}

int trn_check_buildable(const eft_config *c, const g4_plan *p) {
    if (c->load_in_4bit.v) {
        /* QLoRA is built (run_weights.h) with Axolotl's default storage, double quantisation. */
        bool dq = true;
        if (cfg_map_bool(&c->bnb_config_kwargs, "bnb_4bit_use_double_quant", &dq,
                         "bnb_config_kwargs"))
            return -1;
        if (!dq)
            return cfg_fail_at(
                cfg_map_find(&c->bnb_config_kwargs, "bnb_4bit_use_double_quant")->v[0].at,
                "bnb_config_kwargs.bnb_4bit_use_double_quant",
                "false is not supported by this build of eft: it stores NF4 "
                "weights with double quantisation (Axolotl's default). Remove "
                "the key or set it to true.");
    }
    if (is_8bit_optimizer(c->optimizer.v))
        return cfg_fail_at(c->optimizer.at, "optimizer",
                           "%s (8-bit AdamW) is not supported by this build of eft yet. Use "
                           "optimizer: adamw_torch (fp32 moments).",
                           c->optimizer.v);
    if (c->quantize_moe_experts.v)
        return cfg_fail_at(c->quantize_moe_experts.at, "quantize_moe_experts",
                           "NF4 MoE experts are not supported by this build of eft yet; remove "
                           "the key.");
    if (c->lora_target_parameters.set && c->lora_target_parameters.n)
        return cfg_fail_at(c->lora_target_parameters.at, "lora_target_parameters",
                           "LoRA on MoE expert tensors is not supported by this build of eft "
                           "yet; remove the key.");
    for (int l = 0; l < p->L; l++)
        if (p->layers[l].moe)
            return cfg_fail_at(c->base_model.at, "base_model",
                               "%s is a mixture-of-experts model (26B-A4B-shaped); its MoE "
                               "layers are not supported by this build of eft yet. Dense "
                               "Gemma 4 models (E2B, E4B, 12B, 31B) are.",
                               c->base_model.v);
    return 0;
}
