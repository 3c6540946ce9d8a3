/* pack_loader.c: a micro-batch into the caller's buffers, and the run's step count (see
 * pack.h). */
#include "data/pack.h"

#include "base/err.h"

#include <assert.h>
#include <math.h>

/* Appends sample i as one document: ids, labels (the first one masked when packed), pos. */
static void put_doc(const ds_samples *s, int64_t i, bool packed, pack_batch *b) {
    int64_t a = s->off[i], len = ds_len(s, i);
    for (int64_t k = 0; k < len; k++) {
        int32_t label = ds_label(s, a + k);
        if (k == 0 && packed) label = -100;
        b->ids[b->n + k] = s->ids[a + k];
        b->labels[b->n + k] = label;
        b->pos[b->n + k] = (int32_t)k;
        b->trained += label != -100;
    }
    b->n += (int)len;
    b->docs++;
}

static void put_bin(const pack_loader *L, int64_t bin, pack_batch *b) {
    for (int64_t k = L->bin_start[bin]; k < L->bin_start[bin + 1]; k++)
        put_doc(L->s, L->order[k], true, b);
}

void pack_fill(const pack_loader *L, int64_t i, pack_batch *b) {
    assert(i >= 0 && i < L->n_mb);
    const pack_config *pc = &L->cfg;
    b->n = b->rows = b->docs = 0;
    b->trained = 0;
    b->row_start[0] = 0;
    if (!pc->packed) {
        int64_t from = i * pc->micro_batch_size;
        int64_t to = EFT_MIN(from + pc->micro_batch_size, L->s->n);
        for (int64_t k = from; k < to; k++) {
            put_doc(L->s, L->order[k], false, b);
            b->row_start[++b->rows] = b->n;
        }
    } else if (!pc->real_batches) {
        put_bin(L, L->bin_perm[i], b);
        b->row_start[++b->rows] = b->n;
    } else {
        for (int64_t k = 0; k < pc->micro_batch_size; k++) {
            put_bin(L, L->bin_perm[i * pc->micro_batch_size + k], b);
            b->row_start[++b->rows] = b->n;
        }
    }
    assert(b->n <= L->max_tokens && b->rows <= L->max_rows);
}

/* G: gradient_accumulation_steps, or batch_size / micro_batch_size. */
static int64_t accumulation(const eft_config *c) {
    if (c->gradient_accumulation_steps.set && c->gradient_accumulation_steps.v > 0)
        return c->gradient_accumulation_steps.v;
    if (c->batch_size.set && c->batch_size.v > 0)
        return EFT_MAX(1, c->batch_size.v / EFT_MAX(c->micro_batch_size.v, 1));
    return EFT_MAX(1, c->gradient_accumulation_steps.v);
}

void pack_steps_compute(const pack_loader *L, const eft_config *c, pack_steps *out) {
    int64_t B = EFT_MAX(c->micro_batch_size.v, 1), G = accumulation(c);
    double E = c->num_epochs.v > 0 ? c->num_epochs.v : 1.0;
    out->micro_batches = L->n_mb;
    out->accumulation = G;
    out->updates_per_epoch = (L->n_mb + G - 1) / G;
    if (!L->cfg.packed) {
        out->estimate = (int64_t)ceil((double)L->s->n * E / (double)(B * G));
    } else if (c->sample_packing_eff_est.set && c->sample_packing_eff_est.v > 0) {
        double x =
            0.99 * (double)L->s->n_tokens / c->sample_packing_eff_est.v / (double)c->sequence_len.v;
        out->estimate = (int64_t)((floor(x / (double)(B * G)) - 1) * E);
    } else {
        out->estimate = (int64_t)floor((double)EFT_MAX(1, L->n_mb / G) * E);
    }
    bool capped = c->max_steps.set && c->max_steps.v > 0;
    out->total = capped ? c->max_steps.v : out->estimate;
    out->warmup_base = capped ? EFT_MIN(out->estimate, c->max_steps.v) : out->estimate;
}
