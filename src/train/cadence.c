/* cadence.c: step counts, warmup, epochs and the log/eval/save flags of a run (see cadence.h).
 *
 * Sources of each rule, read for behaviour: Axolotl's calculate_total_num_steps (utils/trainer.py),
 * its trainer builder (_configure_warmup_and_logging, _configure_save_and_eval_strategy,
 * max_steps = cfg.max_steps or total_num_steps), normalize_config (evals_per_epoch,
 * saves_per_epoch); transformers 5.14.1's Trainer (set_initial_training_values, _run_epoch),
 * TrainingArguments (get_warmup_steps, the eval_steps fallback) and DefaultFlowCallback.
 */
#include "train/cadence.h"

#include "base/err.h"
#include "base/log.h"

#include <assert.h>
#include <math.h>
#include <string.h>

static cfg_pos place(const eft_config *c, cfg_pos at) {
    return at.file ? at : (cfg_pos){c->path, 0, 0};
}

/* ---- the number of updates ---- */

/* Axolotl's estimate (training-math.md 6.4), before max_steps. */
static int64_t estimate_updates(const eft_config *c, const cad_data *d, int64_t B, int64_t G) {
    const double E = c->num_epochs.v;
    const int64_t batch = B * G;
    if (!c->sample_packing.v) return (int64_t)ceil((double)d->rows * E / (double)batch);
    if (c->sample_packing_eff_est.set) {
        /* (floor(0.99 tokens / eff / sequence_len // batch_size) - 1) * num_epochs; a fractional
         * product stops the Trainer at the first step past it, so it is rounded up. */
        double bins = floor(0.99 * (double)d->tokens / c->sample_packing_eff_est.v /
                            (double)c->sequence_len.v / (double)batch);
        return (int64_t)ceil((bins - 1) * E);
    }
    const int64_t per_epoch = EFT_MAX(1, d->micro_batches * B / batch);
    return (int64_t)floor((double)per_epoch * E);
}

int64_t cad_warmup(const eft_config *c, int64_t total, int64_t T) {
    int64_t w = 0;
    double ratio = 0; /* Axolotl hands a ratio to the Trainer only when it has no total */
    if (c->warmup_steps.set)
        w = c->warmup_steps.v;
    else if (c->warmup_ratio.set) {
        if (total)
            w = EFT_MAX((int64_t)(c->warmup_ratio.v * (double)total), 0);
        else
            ratio = c->warmup_ratio.v;
    } else if (total)
        w = EFT_MIN((int64_t)(0.03 * (double)total), 100);
    else
        ratio = 0.03;
    if (ratio > 0 && w == 0) {
        if (ratio == 1) return 2;                /* Axolotl's 1 -> 2 applies to the ratio itself */
        return (int64_t)ceil((double)T * ratio); /* TrainingArguments.get_warmup_steps */
    }
    return w == 1 ? 2 : w;
}

/* ---- eval and save intervals ---- */

/* A `*_steps` value as TrainingArguments and TrainerState resolve it: a fraction below 1 is
 * ceil(T * f), anything else must be a whole number. */
static int resolve_steps(const eft_config *c, const cfg_float *key, const char *name, double f,
                         int64_t T, int64_t *out) {
    if (f <= 0) return cfg_fail_at(place(c, key->at), name, "must be above 0, found %g.", f);
    if (f < 1) {
        *out = (int64_t)ceil((double)T * f);
        return 0;
    }
    if (f != floor(f))
        return cfg_fail_at(place(c, key->at), name,
                           "%g is neither a whole number of steps nor a fraction below 1 of the "
                           "run. Write an integer, or a fraction such as 0.25.",
                           f);
    *out = (int64_t)f;
    return 0;
}

static cad_strategy strategy_of(const char *s) {
    return !strcmp(s, "steps") ? CAD_STEPS : !strcmp(s, "epoch") ? CAD_EPOCH : CAD_NO;
}

/* 1 / (n * num_epochs), kept when below 1 (Axolotl's normalize_config); else 0 and a warning. */
static double per_epoch_fraction(const eft_config *c, const cfg_int *key, const char *name,
                                 const char *what) {
    double f = 1.0 / ((double)key->v * c->num_epochs.v);
    if (f < 1.0) return f;
    char *where = cfg_pos_str(place(c, key->at));
    eft_warn("%s: %s: %lld per epoch over %g epoch(s) is one %s or fewer in the whole run; Axolotl "
             "then ignores the key and so does eft: %s. Use %s_steps for a fixed interval.",
             where, name, (long long)key->v, c->num_epochs.v, what,
             key == &c->evals_per_epoch ? "no evaluation runs unless eval_strategy is set"
                                        : "checkpoints follow save_strategy (epoch by default)",
             what);
    eft_free(where);
    return 0;
}

static int plan_eval(cad_plan *p, const eft_config *c) {
    p->eval_strategy = CAD_NO;
    p->eval_steps = 500;
    p->eval_on_start = false;
    if (!(c->val_set_size.v > 0 || c->test_datasets.set)) return 0;
    double f = 0;
    const cfg_float *key = &c->eval_steps;
    if (c->evals_per_epoch.set && c->evals_per_epoch.v > 0)
        f = per_epoch_fraction(c, &c->evals_per_epoch, "evals_per_epoch", "eval");
    if (c->eval_steps.set && c->eval_steps.v != 0) f = c->eval_steps.v;
    if (f != 0) {
        p->eval_strategy = CAD_STEPS;
        p->eval_on_start = true;
        return resolve_steps(c, key, "eval_steps", f, p->T, &p->eval_steps);
    }
    if (c->eval_strategy.set && c->eval_strategy.v) {
        /* Axolotl asks for the step-0 evaluation even with eval_strategy: no. */
        p->eval_strategy = strategy_of(c->eval_strategy.v);
        p->eval_on_start = true;
        if (p->eval_strategy == CAD_STEPS) p->eval_steps = p->logging_steps;
    }
    return 0;
}

static int plan_save(cad_plan *p, const eft_config *c) {
    p->save_strategy = CAD_EPOCH;
    p->save_steps = 500;
    p->save_first_step = c->save_first_step.v;
    double f = 0;
    if (c->saves_per_epoch.set && c->saves_per_epoch.v > 0)
        f = per_epoch_fraction(c, &c->saves_per_epoch, "saves_per_epoch", "save");
    if (c->save_steps.set && c->save_steps.v != 0) f = c->save_steps.v;
    if (f != 0) {
        p->save_strategy = CAD_STEPS;
        return resolve_steps(c, &c->save_steps, "save_steps", f, p->T, &p->save_steps);
    }
    if (c->save_strategy.set && c->save_strategy.v)
        p->save_strategy = strategy_of(c->save_strategy.v);
    return 0;
}

int cad_plan_make(cad_plan *p, const eft_config *c, const cad_data *d) {
    *p = (cad_plan){0};
    p->B = c->micro_batch_size.v;
    p->G = c->batch_size.set ? c->batch_size.v / p->B : c->gradient_accumulation_steps.v;
    p->E = c->num_epochs.v;
    assert(p->B >= 1 && p->G >= 1 && p->E > 0);
    if (d->micro_batches < 1 || d->rows < 1)
        return eft_fail("%s: the training data has no rows left after preprocessing (%lld rows, "
                        "%lld micro-batches per epoch). Check the datasets, sequence_len and "
                        "val_set_size.",
                        c->path ? c->path : "config", (long long)d->rows,
                        (long long)d->micro_batches);
    if (c->sample_packing_eff_est.set && d->tokens < 1)
        return eft_fail_internal("cad_plan_make: sample_packing_eff_est needs the token count");
    p->M = d->micro_batches;
    p->U = (p->M + p->G - 1) / p->G;

    int64_t estimate = estimate_updates(c, d, p->B, p->G);
    const bool max_set = c->max_steps.set && c->max_steps.v > 0;
    p->estimate = max_set ? EFT_MIN(estimate, c->max_steps.v) : estimate;
    if (max_set)
        p->T = c->max_steps.v;
    else if (p->estimate > 0)
        p->T = p->estimate;
    else /* max_steps = -1: the Trainer counts epochs itself */
        p->T = (int64_t)ceil(p->E * (double)p->U);
    if (p->T < 1)
        return eft_fail("%s: the run has no optimizer step (num_epochs %g over %lld micro-batches "
                        "of %lld per update). Raise num_epochs or set max_steps.",
                        c->path ? c->path : "config", p->E, (long long)p->M, (long long)p->G);
    p->epochs = (p->T + p->U - 1) / p->U;
    p->W = cad_warmup(c, p->estimate, p->T);
    if (c->logging_steps.set)
        p->logging_steps = c->logging_steps.v;
    else
        p->logging_steps =
            p->estimate ? EFT_MAX(EFT_MIN((int64_t)(0.005 * (double)p->estimate), 10), 1) : 500;
    if (plan_eval(p, c) || plan_save(p, c)) return -1;
    return 0;
}

/* ---- where an update sits ---- */

int64_t cad_micro_batches(const cad_plan *p, int64_t k) {
    assert(k >= 0);
    int64_t i = k % p->U;
    return i == p->U - 1 ? p->M - i * p->G : p->G;
}

int64_t cad_epoch_index(const cad_plan *p, int64_t k) {
    return k / p->U;
}

int64_t cad_first_micro_batch(const cad_plan *p, int64_t k) {
    return (k % p->U) * p->G;
}

double cad_epoch(const cad_plan *p, int64_t k) {
    int64_t consumed = cad_first_micro_batch(p, k) + cad_micro_batches(p, k); /* j + 1 */
    return (double)cad_epoch_index(p, k) + (double)consumed / (double)p->M;
}

bool cad_epoch_ends(const cad_plan *p, int64_t k) {
    return k % p->U == p->U - 1 || k == p->T - 1;
}

/* ---- flags ---- */

bool cad_should_log(const cad_plan *p, int64_t s) {
    return s % p->logging_steps == 0;
}

bool cad_should_eval(const cad_plan *p, int64_t s) {
    switch (p->eval_strategy) {
    case CAD_STEPS:
        return s % p->eval_steps == 0 || s == p->T;
    case CAD_EPOCH:
        return cad_epoch_ends(p, s - 1);
    case CAD_NO:
        break;
    }
    return false;
}

bool cad_should_save(const cad_plan *p, int64_t s) {
    if (p->save_first_step && s == 1) return true;
    switch (p->save_strategy) {
    case CAD_STEPS:
        return s % p->save_steps == 0 || s == p->T;
    case CAD_EPOCH:
        return cad_epoch_ends(p, s - 1);
    case CAD_NO:
        break;
    }
    return false;
}
