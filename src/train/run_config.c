/* run_config.c: config + plan -> run shape, and the features this build has (see run_config.h). */
#include "train/run_config.h"

#include "base/err.h"
#include "base/threads.h"
#include "peft/lora_target.h"
#include "train/opt_adamw.h"

#include <string.h>

/* The memory plan's optimizer for the config's (opt_adamw.h has the names). */
static g4_optim plan_optim(const char *o) {
    switch (opt_kind_from_name(o)) {
    case OPT_ADAMW_TORCHAO_8BIT:
        return G4_OPTIM_ADAMW_8BIT_TORCHAO;
    case OPT_ADAMW_BNB_8BIT:
        return G4_OPTIM_ADAMW_8BIT;
    default:
        return G4_OPTIM_ADAMW;
    }
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
    s->optim = plan_optim(c->optimizer.v);
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
    if (c->lora_target_parameters.set && c->lora_target_parameters.n && c->lora_dropout.v > 0)
        return cfg_fail_at(c->lora_dropout.at, "lora_dropout",
                           "is %g, but PEFT applies no dropout to LoRA on expert tensors "
                           "(lora_target_parameters; it refuses the config). Set lora_dropout: 0.",
                           c->lora_dropout.v);
    return 0;
}
