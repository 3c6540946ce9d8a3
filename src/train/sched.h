/* sched.h: the learning-rate schedule, exactly as transformers' schedulers (and Axolotl's cosine
 * with cosine_min_lr_ratio) compute it (training-math.md 6.1, 6.2).
 *
 * The schedule is a factor lambda(k) in double; update k (0-based, global step k+1) uses
 * eta_k = learning_rate * lambda(k), and the `learning_rate` logged after that update is the same
 * eta_k. With warmup W > 0 the first update runs at lambda(0) = 0. On resume the schedule simply
 * continues at k = global_step: it has no state.
 *
 *     sched s;
 *     if (sched_from_config(&s, cfg, plan.W, plan.T)) return -1;   // located errors
 *     for k in 0 .. T-1:  opt_adamw_step(&o, sched_lr(&s, k));
 *
 * lr_scheduler                 after warmup (p = (k - W) / max(1, T - W))
 *   linear                     max(0, (T - k) / max(1, T - W))
 *   cosine (default)           max(0, 0.5 (1 + cos(pi nc 2 p))), nc = num_cycles (0.5)
 *   cosine + cosine_min_lr_ratio r != 0 (Axolotl)   (1 - r) 0.5 (1 + cos(pi p)) + r
 *   constant                   1, and no warmup at all
 *   constant_with_warmup       1
 *   cosine_with_min_lr         max(0, f (1 - r) + r), f as cosine, r = min_lr_rate or min_lr / lr
 *   polynomial                 ((lr - lr_end) (1 - (k - W) / (T - W))^power + lr_end) / lr,
 *                              lr_end / lr once k > T (lr_end 1e-7, power 1)
 *   cosine_with_restarts       0 once p >= 1, else max(0, 0.5 (1 + cos(pi ((nc p) mod 1)))), nc 1
 * Warmup is k / max(1, W) for k < W. lr_scheduler_kwargs gives num_cycles, min_lr_rate, min_lr,
 * lr_end and power, each only to the schedules that take it (a key a schedule does not take is an
 * error, as it is a TypeError in transformers); constant and constant_with_warmup ignore the
 * kwargs and Axolotl's min-ratio cosine ignores num_cycles, as the reference does.
 *
 * Not here: how W and T are found (cadence.h), one_cycle, rex, inverse_sqrt,
 * reduce_lr_on_plateau, warmup_stable_decay and the other Axolotl variants (refused, located).
 */
#ifndef EFT_TRAIN_SCHED_H
#define EFT_TRAIN_SCHED_H

#include "io/config.h"

#include <stdint.h>

typedef enum sched_kind {
    SCHED_LINEAR,
    SCHED_COSINE,
    SCHED_COSINE_MIN_RATIO, /* Axolotl: cosine with cosine_min_lr_ratio */
    SCHED_CONSTANT,
    SCHED_CONSTANT_WITH_WARMUP,
    SCHED_COSINE_WITH_MIN_LR,
    SCHED_POLYNOMIAL,
    SCHED_COSINE_WITH_RESTARTS,
} sched_kind;

typedef struct sched {
    sched_kind kind;
    double lr;         /* learning_rate, eta0 */
    int64_t W, T;      /* warmup updates, total updates */
    double num_cycles; /* cosine 0.5, cosine_with_restarts 1 */
    double min_rate;   /* cosine_with_min_lr: r; Axolotl's variant: cosine_min_lr_ratio */
    double lr_end;     /* polynomial: 1e-7 */
    double power;      /* polynomial: 1.0 */
} sched;

/* Reads learning_rate, lr_scheduler, lr_scheduler_kwargs and cosine_min_lr_ratio, for a run of
 * T updates with W of warmup. Errors (an unsupported schedule, a kwarg the schedule does not
 * take, cosine_with_min_lr without exactly one of min_lr_rate / min_lr, polynomial with
 * learning_rate <= lr_end or with W == T) are located at the key at fault. */
int sched_from_config(sched *s, const eft_config *c, int64_t W, int64_t T);

/* lambda(k), for any k >= 0 (k > T is fine: lambda(T) is computed after the last update). */
double sched_lambda(const sched *s, int64_t k);
/* learning_rate * lambda(k): the rate of update k, and the one logged for global step k+1. */
double sched_lr(const sched *s, int64_t k);

#endif
