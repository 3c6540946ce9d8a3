/* run_weights.c: the base weights of a run, bf16 or NF4 (see run_weights.h). */
#include "train/run_weights.h"

#include "base/log.h"
#include "peft/nf4_load.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

int trn_weights_load(g4_weights *w, const eft_config *c, const g4_plan *p, const g4_tensors *ts,
                     bool train_all) {
    if (!c->load_in_4bit.v) return g4_weights_load(w, p, ts, c->base_model_path, train_all);
    assert(!train_all);
    const char *compute = NULL;
    if (cfg_map_str(&c->bnb_config_kwargs, "bnb_4bit_compute_dtype", &compute, "bnb_config_kwargs"))
        return -1;
    nf4_options o = {!compute || strcmp(compute, "float32"), c->quantize_moe_experts.v};
    if (nf4_weights_load(w, p, ts, c->base_model_path, &o)) return -1;
    int n, experts = 0;
    int64_t bytes = nf4_weights_bytes(w, &n);
    for (int i = 0; i < ts->n; i++)
        experts += w->params[i].w.dtype == OPS_W_NF4 && ts->t[i].group == G4_GROUP_MOE_EXPERTS;
    char what[64] = "";
    if (experts) snprintf(what, sizeof what, " and %d expert tensors", experts);
    eft_info("load_in_4bit: %d linear weights%s quantised to NF4 (%.3g MB), dequantised to %s",
             n - experts, what, (double)bytes / 1e6, o.round_bf16 ? "bf16" : "fp32");
    return 0;
}
