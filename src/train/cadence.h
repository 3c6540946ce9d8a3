/* cadence.h: the bookkeeping of a run as Axolotl + transformers' Trainer do it: how many updates,
 * which micro-batches each gathers, the warmup, the fractional epoch, when to log, evaluate and
 * save (training-math.md 1, 6.3, 6.4, 8, 9.1), and the loss arithmetic of gradient accumulation
 * and logging (training-math.md 2; cad_loss.c).
 *
 * The trainer's loop, with p from cad_plan_make:
 *
 *     if (p.eval_on_start) evaluate (logged at step 0, epoch 0);
 *     for (k = 0; k < p.T; k++) {                       // update k, global step s = k + 1
 *         n_mb = cad_micro_batches(&p, k);              // the next n_mb micro-batches of the epoch
 *         forward/backward each (grad scale: cad_loss_grad_scale), clip, step at sched_lr(k);
 *         s = k + 1;  epoch = cad_epoch(&p, k);
 *         if (cad_should_log(&p, s))  log;              // in this order: log, evaluate, save
 *         if (cad_should_eval(&p, s)) evaluate;
 *         if (cad_should_save(&p, s)) save checkpoint-<s>;
 *     }
 *
 * Where the reference has a quirk, eft keeps it (so that the same YAML gives the same run):
 *   - T is Axolotl's estimate, not the data loader's length: training may stop mid-epoch or run
 *     into a last partial epoch (the micro-batches are still those of the loader, M per epoch).
 *   - evals_per_epoch n gives eval_steps = 1 / (n * num_epochs). Axolotl only keeps that value when
 *     it is below 1; at 1 or above (one evaluation per epoch of a one-epoch run, say) it sets no
 *     eval_steps, and without an eval_strategy the Trainer then evaluates never, not even at step
 *     0. eft does the same and warns, naming the keys, because a run that silently skips its
 *     evaluations is worse than one that does what the user meant differently from Axolotl.
 *     saves_per_epoch follows the same rule (at 1 or above the default epoch saves apply).
 *   - eval_on_start: Axolotl asks for the step-0 evaluation whenever eval steps or any
 *     eval_strategy (even "no") is given and eval data exists.
 *   - With step-based evaluation the Trainer (transformers 5.14.1 and later) also evaluates after
 *     the last update when T is not a multiple of eval_steps. training-math.md 9.1 says it does
 *     not; transformers 5.14.1's DefaultFlowCallback.on_step_end does (checked in its wheel).
 *   - A step-based save strategy always saves after the last update; an epoch-based one saves
 *     (and evaluates) at every epoch end, including the end of a last partial epoch.
 *
 * Not here: the learning rate (sched.h), the data order, the packing of bins, what an evaluation
 * or a checkpoint contains.
 */
#ifndef EFT_TRAIN_CADENCE_H
#define EFT_TRAIN_CADENCE_H

#include "io/config.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum cad_strategy { CAD_NO, CAD_STEPS, CAD_EPOCH } cad_strategy;

/* What the data layer knows before step 0. */
typedef struct cad_data {
    int64_t rows;          /* training rows after preprocessing and the validation split */
    int64_t micro_batches; /* M per epoch: ceil(rows / micro_batch_size) unpacked; with
                              sample_packing, L, the packed micro-batches the sampler yields */
    int64_t tokens;        /* input tokens of all training rows; read only with
                              sample_packing_eff_est */
} cad_data;

typedef struct cad_plan {
    int64_t B, G;     /* micro_batch_size, gradient accumulation (batch_size / B when set) */
    double E;         /* num_epochs */
    int64_t M, U;     /* micro-batches and updates per epoch, U = ceil(M / G) */
    int64_t estimate; /* Axolotl's step estimate, min(estimate, max_steps) when that is set */
    int64_t T;        /* updates the run does: max_steps, else the estimate */
    int64_t epochs;   /* epochs entered, ceil(T / U) (trainer_state num_train_epochs) */
    int64_t W;        /* warmup updates, as the schedule sees them */
    int64_t logging_steps;
    cad_strategy eval_strategy, save_strategy;
    int64_t eval_steps, save_steps; /* absolute intervals; 500 when not step-based, as
                                       trainer_state.json records them */
    bool eval_on_start;             /* evaluate before the first update (step 0) */
    bool save_first_step;           /* also save after update 0 */
} cad_plan;

/* Resolves the run. Errors (no training data, a fractional eval_steps above 1, ...) are located
 * at the key at fault, or name the data. May warn (eft_warn) about the evals_per_epoch and
 * saves_per_epoch rule above. */
int cad_plan_make(cad_plan *p, const eft_config *c, const cad_data *d);

/* Warmup as Axolotl computes it from `total` (its estimate, capped by max_steps) and the Trainer
 * then reads it for a run of T updates (training-math.md 6.3): warmup_steps if set, else
 * trunc(warmup_ratio * total), else min(trunc(0.03 * total), 100); 1 becomes 2; with total 0 the
 * ratio r becomes ceil(T * r). */
int64_t cad_warmup(const eft_config *c, int64_t total, int64_t T);

/* Micro-batches gathered by update k: G, or what is left of the epoch for its last update. */
int64_t cad_micro_batches(const cad_plan *p, int64_t k);
/* 0-based epoch of update k, and the index within that epoch of its first micro-batch. */
int64_t cad_epoch_index(const cad_plan *p, int64_t k);
int64_t cad_first_micro_batch(const cad_plan *p, int64_t k);
/* The `epoch` logged after update k: e + (j + 1) / M, j the last micro-batch consumed (double). */
double cad_epoch(const cad_plan *p, int64_t k);
/* Update k ends an epoch: the last of the epoch, or the last of the run (the Trainer closes the
 * epoch it stopped in). */
bool cad_epoch_ends(const cad_plan *p, int64_t k);

/* Flags after an update, for global step s = k + 1 (1 .. T). */
bool cad_should_log(const cad_plan *p, int64_t s);
bool cad_should_eval(const cad_plan *p, int64_t s);
bool cad_should_save(const cad_plan *p, int64_t s);

/* ---- loss of an update (training-math.md 2; cad_loss.c) ---- */

typedef enum cad_loss_mode {
    CAD_LOSS_TOKENS,     /* mode A, loss_normalization: tokens: sum / trainable tokens of the
                            whole update (unshifted count) */
    CAD_LOSS_MICRO_BATCH /* mode B, micro_batch: mean of each micro-batch / micro-batch count */
} cad_loss_mode;

/* The mode of loss_normalization (default tokens). */
cad_loss_mode cad_loss_mode_of(const eft_config *c);

/* The factor that turns micro-batch i's summed token loss S_i into its loss_i, which is also the
 * gradient each of its positions' loss receives (d loss_i / d l_t):
 *   mode A: 1 / N, N = sum over the update of the unshifted counts c_i (`update_count`);
 *   mode B: (1 / n_mb) / n_i, n_i = its shifted count (`count`), n_mb its update's micro-batches.
 * fp32, rounded where the reference's autograd rounds. A micro-batch without targets in mode B
 * gives NaN, as the reference's 0/0 does. */
float cad_loss_grad_scale(cad_loss_mode mode, int64_t count, int64_t update_count, int64_t n_mb);
/* loss_i from S_i, as the reference computes it in fp32 (S_i / N; (S_i / n_i) / n_mb). */
float cad_loss_value(cad_loss_mode mode, float sum, int64_t count, int64_t update_count,
                     int64_t n_mb);

/* The logged `loss`: an fp32 accumulator of the loss_i of every micro-batch, averaged over the
 * updates since the last log (training-math.md 2.5, 2.6), and the running train_loss. */
typedef struct cad_loss_log {
    float acc;           /* since the last log */
    int64_t last_logged; /* global step of the last log (the starting step before any) */
    int64_t first_step;  /* global step this run started from (0, or the resumed step) */
    double total;        /* sum of the windows taken so far, for train_loss */
    int64_t filtered;    /* non-finite micro-batch losses replaced so far */
} cad_loss_log;

/* Starts the log at `global_step` (0, or the step a run resumes from). */
void cad_loss_log_init(cad_loss_log *l, int64_t global_step);
/* Adds micro-batch loss loss_i during the update that follows global step `global_step` (the
 * step count before that update). A NaN or infinite loss_i adds acc / (1 + global_step -
 * last_logged) instead (logging_nan_inf_filter). */
void cad_loss_log_add(cad_loss_log *l, float loss_i, int64_t global_step);
/* At a logging step s: returns acc / (s - last_logged) (double), resets the window. */
double cad_loss_log_take(cad_loss_log *l, int64_t s);
/* train_loss at global step s: every micro-batch loss since the start (windows taken plus the
 * open one) over the updates done, s - first_step. */
double cad_loss_log_train_loss(const cad_loss_log *l, int64_t s);

#endif
