/* opt_adamw.h: AdamW over flat fp32 tensors, with the rounding of the reference optimizers, and
 * the gradient norm and clipping that precede it (training-math.md sections 3 and 4).
 *
 * One update of the trainer, in the reference's order (training-math.md section 1):
 *
 *     float norm;                                   // pre-clip, logged as grad_norm
 *     if (opt_clip_grad_norm(&o, c->max_grad_norm.v, &norm)) stop the run (NaN or Inf);
 *     opt_adamw_step(&o, sched_lr(&s, k));          // update k uses eta0 * lambda(k)
 *     zero the gradients
 *
 * Kinds (config `optimizer`):
 *   adamw_torch        torch.optim.AdamW's multi-tensor ("foreach") path: every line of the update
 *                      is one fp32 tensor operation; its double scalars are rounded to fp32;
 *   adamw_torch_fused  torch's fused kernel: decay, moments and `+ eps` evaluated in double and
 *                      rounded when stored, bias corrections narrowed to fp32 (the default);
 *   paged_adamw_32bit  bitsandbytes' 32-bit AdamW (section 5.3.4): fp32 throughout, eps scaled by
 *                      sqrt(bc2), and the weight decay applied AFTER the Adam step.
 * All three are the same update up to rounding, except for the decay order of the last one. The
 * 8-bit optimizers are not here (opt_hparams_from_config refuses them).
 *
 * State: per tensor, m and v (fp32, zeros) and the step count t, allocated once by
 * opt_adamw_init; a step allocates nothing. A tensor whose `grad` is NULL at a step is skipped:
 * its t, m, v and values do not change (torch skips parameters whose .grad is None). A checkpoint
 * writes m, v and t of each tensor as they are (torch keeps t as an fp32 tensor; every t below
 * 2^24 is exact there).
 *
 * Not here: the schedule (sched.h), the loss scaling of gradient accumulation (cadence.h),
 * checkpoint files.
 */
#ifndef EFT_TRAIN_OPT_ADAMW_H
#define EFT_TRAIN_OPT_ADAMW_H

#include "io/config.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum opt_kind { OPT_ADAMW_TORCH, OPT_ADAMW_TORCH_FUSED, OPT_ADAMW_BNB32 } opt_kind;

typedef struct opt_hparams {
    opt_kind kind;
    double beta1, beta2, eps; /* adam_beta1 (0.9), adam_beta2 (0.999), adam_epsilon (1e-8) */
    double weight_decay;      /* of the decay group (opt_decays); the other group has 0 */
} opt_hparams;

/* Reads optimizer, adam_beta1/2, adam_epsilon and weight_decay. An optimizer that this file does
 * not implement (the 8-bit ones) is an error located at the `optimizer` key. */
int opt_hparams_from_config(const eft_config *c, opt_hparams *h);
/* The kind named like the config value ("adamw_torch_fused"), or -1. */
int opt_kind_from_name(const char *name);

/* Whether a trainable tensor gets weight decay (training-math.md 4.3): its full dotted name, as
 * PEFT's named_parameters() spells it, lowercased, contains none of `bias`, `layernorm`,
 * `rmsnorm`, a `norm` component (`(^|.)norm($|.)`) or `_norm` at a component's end
 * (`_norm($|.)`). LoRA A/B weights decay; norm weights and biases never do. */
bool opt_decays(const char *name);

/* A trainable tensor as the trainer hands it over. */
typedef struct opt_param {
    const char *name; /* full dotted name (decides the decay group; used in messages) */
    float *value;     /* [n] fp32 master values, updated in place */
    float *grad;      /* [n] this update's gradient; NULL: no gradient, the tensor is skipped */
    int64_t n;
} opt_param;

/* A tensor with its optimizer state. The trainer may change `grad` between steps (to NULL to skip
 * the tensor); everything else is the optimizer's. */
typedef struct opt_tensor {
    const char *name; /* borrowed from the opt_param */
    float *value;     /* [n] borrowed */
    float *grad;      /* [n] borrowed, or NULL */
    int64_t n;
    double weight_decay; /* hparams.weight_decay or 0 (opt_decays) */
    float *m, *v;        /* [n] first and second moments, in the optimizer's block */
    int64_t t;           /* updates applied to this tensor */
} opt_tensor;

typedef struct opt_adamw {
    opt_hparams h;
    int n;
    opt_tensor *t; /* [n], in the order given */
    float *state;  /* one aligned block: the m and v of every tensor */
} opt_adamw;

/* Copies the tensor list, picks each tensor's weight decay by name and allocates zeroed m, v.
 * Names and buffers stay the caller's and must outlive the optimizer. */
void opt_adamw_init(opt_adamw *o, const opt_hparams *h, const opt_param *p, int n);
void opt_adamw_free(opt_adamw *o);
/* Bytes of optimizer state for n_elems trainable elements (the memory plan's figure). */
int64_t opt_adamw_state_bytes(int64_t n_elems);

/* One update of every tensor that has a gradient, with learning rate lr (eta_k). lr = 0 (the
 * first warmup update) leaves the values unchanged but still advances t, m and v. */
void opt_adamw_step(opt_adamw *o, double lr);

/* The gradient norm of the update (training-math.md 3): the 2-norm over every element of every
 * tensor that has a gradient (sum of squares in double, one sqrt, rounded to fp32), stored in
 * *norm before any clipping. When max_norm > 0 every gradient is multiplied by
 * coef = min(1, max_norm / (norm + 1e-6)), computed in fp32 as torch does. Returns 0, or -1 when
 * the norm is NaN or infinite: an error names the first tensor with a non-finite gradient, and
 * no gradient is scaled (the reference would go on with NaN weights; the trainer stops instead). */
int opt_clip_grad_norm(opt_adamw *o, double max_norm, float *norm);

#endif
