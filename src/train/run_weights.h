/* run_weights.h: the base weights a run computes with, as its config asks: as the checkpoint
 * holds them, or with the linear weights in NF4 (load_in_4bit: QLoRA, bitsandbytes' format and
 * values; bnb_config_kwargs.bnb_4bit_compute_dtype float32 keeps the exact fp32 dequantisation,
 * anything else rounds it to bf16 as Axolotl's bf16 QLoRA does). Shared by training, evaluation
 * and generation, so that all three see the model the adapter was trained on.
 */
#ifndef EFT_TRAIN_RUN_WEIGHTS_H
#define EFT_TRAIN_RUN_WEIGHTS_H

#include "io/config.h"
#include "model/g4_weights.h"

#include <stdbool.h>

/* g4_weights_load from c->base_model_path, or its NF4 form with load_in_4bit (then train_all
 * must be false: the config checks refuse full fine-tuning of a 4-bit base). Logs how many
 * tensors were quantised and the bytes they take. */
int trn_weights_load(g4_weights *w, const eft_config *c, const g4_plan *p, const g4_tensors *ts,
                     bool train_all);

#endif
