/* lora.h: LoRA adapters on the model's linear maps, created and initialised as PEFT does.
 *
 * An adapter set hangs one g4_lora (A [r, in], B [out, r], fp32, with dA and dB when trained)
 * on every selected linear parameter (lora_select in lora_target.h picks them); the model then
 * computes y = x Wᵀ + s (drop(x) Aᵀ) Bᵀ (g4_linear.c). Everything lives in one allocation sized
 * before it is made. The set also lists its tensors under the names PEFT gives them in
 * adapter_model.safetensors (base_model.model.<module path>.lora_A.weight), which is what the
 * optimizer walks and what peft_io.h saves.
 *
 * Scaling and initialisation follow ../shared/spec/training-math.md section 7:
 *   s = alpha / r, or alpha / sqrt(r) with rsLoRA (a double, rounded once to fp32);
 *   init true (PEFT's default): B = 0, A ~ U(-b, b), Kaiming-uniform with a = sqrt(5) on fan_in
 *     = in: b = sqrt(3) * sqrt(2 / (1 + a²)) / sqrt(in), computed in double as torch does;
 *   init gaussian: B = 0, A ~ N(0, std = 1/r);
 *   init false: PEFT leaves nn.Linear's own initialisation: A as above, and B Kaiming-uniform on
 *     its own fan_in (r), so the adapter starts non-zero.
 * Draws are then rounded to bf16 and kept in fp32: PEFT creates the adapter in the base layer's
 * dtype (bf16 for the models eft trains) and only then autocasts it to fp32. (When the base
 * layer is fp32, PEFT keeps the unrounded draw; eft rounds anyway, so an adapter's start does
 * not depend on how the checkpoint was stored.) Each module draws from its own stream of the
 * seeded RNG, named by its module path, so a module's values depend on the seed and its path
 * only, never on which other modules are selected or in which order. The numbers are not
 * torch's: bit-identical starts with PEFT are not a goal (section 7.4).
 *
 * MoE expert tensors ([E, out, in], PEFT's target_parameters) take one adapter for all E experts,
 * laid out as PEFT's ParamWrapper lays it out: A is nn.Linear(in, r*E), [r*E, in], expert e's
 * [r, in] in rows e*r...; B is nn.Linear(r*E, out), [out, r*E], expert e's [out, r] in columns
 * j*E + e (strided: the model gathers it, g4_moe.c). PEFT refuses dropout there, and so does
 * lora_attach. The module path in the tensor names is the experts module ("….experts"), with
 * ".base_layer" for gate_up_proj when the layer's down_proj is adapted too (PEFT nests one
 * wrapper per parameter, gate_up_proj's inside).
 *
 * Not here: choosing the modules (lora_target.h), files (peft_io.h), the forward and backward
 * through A and B (src/model/g4_linear.c, g4_moe.c).
 */
#ifndef EFT_PEFT_LORA_H
#define EFT_PEFT_LORA_H

#include "io/config.h"
#include "model/g4_plan.h"
#include "model/g4_weights.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum lora_init {
    LORA_INIT_DEFAULT,  /* init_lora_weights: true. B = 0, Kaiming-uniform A */
    LORA_INIT_GAUSSIAN, /* "gaussian". B = 0, A ~ N(0, (1/r)²) */
    LORA_INIT_LINEAR,   /* false. A and B as nn.Linear initialises them (B != 0) */
    LORA_INIT_EMPTY     /* zeros, for a caller that fills A and B itself (a loaded file) */
} lora_init;

/* What every adapter of a set shares. */
typedef struct lora_spec {
    int r;          /* rank, >= 1 */
    double alpha;   /* lora_alpha */
    bool rslora;    /* s = alpha / sqrt(r) instead of alpha / r */
    double dropout; /* on the adapter input in training, in [0, 1) */
    lora_init init;
    bool train; /* allocate dA and dB (the model then computes them) */
} lora_spec;

/* A tensor name; a module path as PEFT names it (a g4_tensor's, plus ".base_layer"). */
enum { LORA_NAME_MAX = 160, LORA_MODULE_MAX = G4_NAME_MAX + 16 };

/* One adapter matrix, as the optimizer and the adapter file see it. */
typedef struct lora_tensor {
    char name[LORA_NAME_MAX]; /* "base_model.model.<module>.lora_A.weight" (or lora_B) */
    int64_t shape[2];         /* [r, in] for A, [out, r] for B */
    int64_t numel;
    float *data;           /* the g4_lora's A or B */
    float *grad;           /* its dA or dB; NULL when not trained */
    const g4_tensor *base; /* the linear map it adapts */
} lora_tensor;

typedef struct lora_adapter {
    lora_spec spec;
    float scale; /* s, the same for every module */
    int n_modules;
    g4_lora *mods;     /* [n_modules], hung on the parameters (owned) */
    g4_param **params; /* [n_modules]: the parameter each one hangs on (borrowed) */
    int n_tensors;
    lora_tensor *tensors; /* [2 n_modules]: A then B of each module, in tensor-list order */
    float *block;         /* every A, B, dA and dB (owned: one allocation) */
    size_t block_bytes;
} lora_adapter;

/* Hangs an adapter on every parameter w->params[i] with selected[i] (i over w->ts), sized,
 * scaled and initialised by `spec`, drawing from `seed`. Linear maps take one (q/k/v/o,
 * gate/up/down, the PLE linears, the router, MoE expert tensors); selecting the LM head, or an
 * expert tensor with dropout, is a user error naming it. An unselected parameter keeps p->lora ==
 * NULL; a selected one must not have an adapter yet. On success *a owns the adapters (lora_detach);
 * on failure nothing is attached. Selecting nothing is allowed (an empty set). */
int lora_attach(lora_adapter *a, g4_weights *w, const bool *selected, const lora_spec *spec,
                uint64_t seed);
/* Unhooks every adapter from its parameter and frees the set. A zeroed set is fine. */
void lora_detach(lora_adapter *a);

/* Training or evaluation behaviour, like torch's model.train() / model.eval(): evaluation turns
 * dropout off (PEFT's dropout is the identity in eval mode); training restores spec.dropout. */
void lora_set_train(lora_adapter *a, bool train);

/* The module path PEFT's tensor names use for parameter t (out[LORA_MODULE_MAX]): t->module, or
 * for an expert tensor its experts module, plus ".base_layer" when `nested` (gate_up_proj with
 * the layer's down_proj adapted too). */
void lora_peft_module(char *out, const g4_tensor *t, bool nested);

/* The tensor with PEFT name `name`, or NULL. */
const lora_tensor *lora_find(const lora_adapter *a, const char *name);

/* s for (alpha, r, rslora): the double PEFT computes, rounded to fp32. */
float lora_scale(double alpha, int r, bool rslora);
/* PEFT's Kaiming-uniform bound on A for fan_in inputs, in double as torch computes it. */
double lora_kaiming_bound(int64_t fan_in);

/* The spec a run's config asks for: lora_r, lora_alpha, peft_use_rslora, lora_dropout and
 * peft_init_lora_weights (true, false or gaussian). train is set. Errors name the key. */
int lora_spec_from_config(lora_spec *s, const eft_config *c);

#endif
