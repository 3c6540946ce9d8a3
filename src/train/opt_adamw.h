/* opt_adamw.h: AdamW over flat fp32 tensors, with the rounding of the reference optimizers, and
 * the gradient norm and clipping that precede it (training-math.md sections 3, 4 and 5).
 *
 * One update of the trainer, in the reference's order (training-math.md section 1):
 *
 *     float norm;                                   // pre-clip, logged as grad_norm
 *     if (opt_clip_grad_norm(&o, c->max_grad_norm.v, &norm)) stop the run (NaN or Inf);
 *     opt_adamw_step(&o, opt_adamw_lr(&o, s.lr, sched_lambda(&s, k)));   // eta0 * lambda(k)
 *     zero the gradients
 *
 * Kinds (config `optimizer`):
 *   adamw_torch        torch.optim.AdamW's multi-tensor ("foreach") path: every line of the update
 *                      is one fp32 tensor operation; its double scalars are rounded to fp32;
 *   adamw_torch_fused  torch's fused kernel: decay, moments and `+ eps` evaluated in double and
 *                      rounded when stored, bias corrections narrowed to fp32 (the default);
 *   paged_adamw_32bit  bitsandbytes' 32-bit AdamW (section 5.3.4): fp32 throughout, eps scaled by
 *                      sqrt(bc2), and the weight decay applied AFTER the Adam step;
 *   adamw_torch_8bit   torchao's AdamW8bit (section 5.4; alias ao_adamw_8bit): 8-bit blockwise
 *                      moments, decay before the step, the learning rate an fp32 tensor;
 *   adamw_bnb_8bit     bitsandbytes' 8-bit AdamW (section 5.3; also adamw_8bit and
 *                      paged_adamw_8bit, which only pages memory): 8-bit blockwise moments, decay
 *                      after the step, a NaN/Inf gradient resets the element's moments.
 * All are the same update up to rounding, except for the decay order of the bitsandbytes ones
 * and the quantisation of the 8-bit ones (opt_adamw8.h has their details).
 *
 * State: per tensor, the step count t and the moments m and v, allocated once by opt_adamw_init
 * in one block; a step allocates nothing. The moments are fp32 arrays, or for a tensor that an
 * 8-bit kind quantises (opt8_quantised: 4096 elements or more) a uint8 code per element and an
 * fp32 scale per block of 256 elements, each. A tensor whose `grad` is NULL at a step is skipped:
 * its t, m, v and values do not change (torch skips parameters whose .grad is None). A
 * checkpoint saves each tensor's state arrays (opt_tensor_state) and t as they are, so a resume
 * continues bit for bit (torch keeps t as an fp32 tensor; every t below 2^24 is exact there).
 *
 * Not here: the schedule (sched.h), the loss scaling of gradient accumulation (cadence.h),
 * checkpoint files.
 */
#ifndef EFT_TRAIN_OPT_ADAMW_H
#define EFT_TRAIN_OPT_ADAMW_H

#include "io/config.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum opt_kind {
    OPT_ADAMW_TORCH,        /* adamw_torch */
    OPT_ADAMW_TORCH_FUSED,  /* adamw_torch_fused */
    OPT_ADAMW_BNB32,        /* paged_adamw_32bit */
    OPT_ADAMW_TORCHAO_8BIT, /* adamw_torch_8bit, ao_adamw_8bit */
    OPT_ADAMW_BNB_8BIT,     /* adamw_bnb_8bit, adamw_8bit, paged_adamw_8bit */
} opt_kind;

typedef struct opt_hparams {
    opt_kind kind;
    double beta1, beta2, eps; /* adam_beta1 (0.9), adam_beta2 (0.999), adam_epsilon (1e-8) */
    double weight_decay;      /* of the decay group (opt_decays); the other group has 0 */
} opt_hparams;

/* Reads optimizer, adam_beta1/2, adam_epsilon and weight_decay. An optimizer that this file does
 * not implement is an error located at the `optimizer` key. */
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
    /* The first and second moments, in the optimizer's block: fp32 (m, v), or 8-bit, where
     * moment e is map[code[e]] * absmax[e / 256]. One of m and m_code is NULL. */
    float *m, *v;               /* [n] */
    uint8_t *m_code, *v_code;   /* [n] indices into map_m, map_v */
    float *m_absmax, *v_absmax; /* [ceil(n / 256)] */
    int64_t t;                  /* updates applied to this tensor */
} opt_tensor;

typedef struct opt_adamw {
    opt_hparams h;
    int n;
    opt_tensor *t; /* [n], in the order given */
    void *state;   /* one aligned block: fp32 moments and scales, then 8-bit codes */
    /* 8-bit kinds: the signed map of m and the unsigned map of v (opt8_map_build, fused). A caller
     * may replace them before the first step (tests do, with a reference run's tables). */
    float map_m[256], map_v[256];
} opt_adamw;

/* Copies the tensor list, picks each tensor's weight decay by name and allocates its zeroed state
 * (fp32, or 8-bit where opt8_quantised says so), and builds the 8-bit maps. Names and buffers
 * stay the caller's and must outlive the optimizer. */
void opt_adamw_init(opt_adamw *o, const opt_hparams *h, const opt_param *p, int n);
void opt_adamw_free(opt_adamw *o);
/* Bytes of `kind`'s state for the tensor `name` of n elements: 8 n for fp32 moments, 2 n + 8
 * ceil(n / 256) for 8-bit ones (the memory plan's figure, g4_memory.c). */
int64_t opt_adamw_state_bytes(opt_kind kind, const char *name, int64_t n);

/* The learning rate that update k runs with, for eta0 = learning_rate and the schedule's factor
 * lambda(k) (sched.h): eta0 * lambda in double (torch and bitsandbytes keep Python floats), or
 * fp32(fp32(eta0) * fp32(lambda)) for torchao, whose rate is an fp32 tensor that the scheduler
 * multiplies in fp32. The rate to pass to opt_adamw_step and to log. */
double opt_adamw_lr(const opt_adamw *o, double eta0, double lambda);

/* One update of every tensor that has a gradient, with learning rate lr (eta_k). lr = 0 (the
 * first warmup update) leaves the values unchanged but still advances t, m and v. */
void opt_adamw_step(opt_adamw *o, double lr);

/* Tensor i's moments as fp32 (dequantised from 8-bit state) into m[n] and v[n], owned by the
 * caller. */
void opt_adamw_moments(const opt_adamw *o, int i, float *m, float *v);

/* One array of a tensor's state, as a checkpoint stores it. */
typedef struct opt_state_array {
    const char *key; /* "exp_avg", "exp_avg_sq" (fp32), or "exp_avg.codes", "exp_avg.absmax",
                        "exp_avg_sq.codes", "exp_avg_sq.absmax" (8-bit) */
    bool u8;         /* uint8 codes; else fp32 */
    void *data;      /* [n], the optimizer's */
    int64_t n;
} opt_state_array;
enum { OPT_STATE_ARRAYS = 4 };

/* The arrays of tensor t's moments, into out; returns how many (2 or 4). Saving them byte for
 * byte with t->t and restoring them into a fresh optimizer of the same kind and tensors resumes
 * bit-exactly. */
int opt_tensor_state(opt_tensor *t, opt_state_array out[OPT_STATE_ARRAYS]);

/* The gradient norm of the update (training-math.md 3): the 2-norm over every element of every
 * tensor that has a gradient (sum of squares in double, one sqrt, rounded to fp32), stored in
 * *norm before any clipping. When max_norm > 0 every gradient is multiplied by
 * coef = min(1, max_norm / (norm + 1e-6)), computed in fp32 as torch does. Returns 0, or -1 when
 * the norm is NaN or infinite: an error names the first tensor with a non-finite gradient, and
 * no gradient is scaled (the reference would go on with NaN weights; the trainer stops instead). */
int opt_clip_grad_norm(opt_adamw *o, double max_norm, float *norm);

#endif
