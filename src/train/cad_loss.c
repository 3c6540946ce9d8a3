/* cad_loss.c: the loss of an update under gradient accumulation, and the logged `loss` window
 * (training-math.md 2; declared in cadence.h).
 *
 * The reference computes these as fp32 tensor operations (the loss is an fp32 scalar tensor, the
 * accumulator `_tr_loss` too); the divisions below round where those operations round. Only the
 * final window average is double (`tr_loss.item() / steps`).
 */
#include "train/cadence.h"

#include <assert.h>
#include <math.h>
#include <string.h>

cad_loss_mode cad_loss_mode_of(const eft_config *c) {
    const char *m = c->loss_normalization.v;
    return m && !strcmp(m, "micro_batch") ? CAD_LOSS_MICRO_BATCH : CAD_LOSS_TOKENS;
}

float cad_loss_grad_scale(cad_loss_mode mode, int64_t count, int64_t update_count, int64_t n_mb) {
    assert(n_mb >= 1);
    if (mode == CAD_LOSS_TOKENS) return 1.0f / (float)update_count;
    /* backward of (mean / n_mb): 1 / n_mb, then the mean's backward divides by the count */
    return (1.0f / (float)n_mb) / (float)count;
}

float cad_loss_value(cad_loss_mode mode, float sum, int64_t count, int64_t update_count,
                     int64_t n_mb) {
    assert(n_mb >= 1);
    if (mode == CAD_LOSS_TOKENS) return sum / (float)update_count;
    return (sum / (float)count) / (float)n_mb;
}

void cad_loss_log_init(cad_loss_log *l, int64_t global_step) {
    *l = (cad_loss_log){.last_logged = global_step, .first_step = global_step};
}

void cad_loss_log_add(cad_loss_log *l, float loss_i, int64_t global_step) {
    if (isfinite(loss_i)) {
        l->acc += loss_i;
        return;
    }
    l->acc += l->acc / (float)(1 + global_step - l->last_logged);
    l->filtered++;
}

double cad_loss_log_take(cad_loss_log *l, int64_t s) {
    assert(s > l->last_logged);
    double window = (double)l->acc; /* tr_loss.item() */
    double loss = window / (double)(s - l->last_logged);
    l->total += window;
    l->acc = 0;
    l->last_logged = s;
    return loss;
}

double cad_loss_log_train_loss(const cad_loss_log *l, int64_t s) {
    double steps = (double)(s - l->first_step);
    return (l->total + (double)l->acc) / (steps > 0.001 ? steps : 0.001);
}
