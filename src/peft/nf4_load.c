/* nf4_load.c: loading a checkpoint with NF4 linear weights (see nf4_load.h). */
#include "peft/nf4_load.h"

#include "model/g4_memory.h"
#include "peft/nf4.h"

static int convert(g4_param *par, const st_archive *a, const st_tensor *st, void *ctx) {
    const nf4_options *o = ctx;
    if (!g4_nf4_quantized(par->t, o->quantize_moe_experts)) return 0;
    ops_nf4 *q = nf4_quantize(st->data, st->dtype, st->numel, o->round_bf16);
    par->owned = q;
    par->w = ops_w_nf4(q);
    st_release(a, st);
    return 1;
}

int nf4_weights_load(g4_weights *w, const g4_plan *p, const g4_tensors *ts, const char *path,
                     const nf4_options *o) {
    g4_load_convert cv = {convert, (void *)o};
    return g4_weights_load_convert(w, p, ts, path, false, &cv);
}

int64_t nf4_weights_bytes(const g4_weights *w, int *count) {
    int64_t bytes = 0;
    int k = 0;
    for (int i = 0; i < w->ts->n; i++) {
        const g4_param *par = &w->params[i];
        if (par->w.dtype != OPS_W_NF4) continue;
        bytes += nf4_bytes(par->w.data);
        k++;
    }
    if (count) *count = k;
    return bytes;
}
