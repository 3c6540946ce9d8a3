/* run_config.h: from a validated config and a model plan to what a run will be.
 *
 * The bridge between the YAML (io/config.h) and the model (model/g4_*.h): the run shape the
 * memory plan sizes, and the check that this build of eft has every feature the config asks
 * for. Keys eft knows but has not built yet fail here, naming the key and its place, before any
 * weight is read: never silently ignored.
 */
#ifndef EFT_TRAIN_RUN_CONFIG_H
#define EFT_TRAIN_RUN_CONFIG_H

#include "io/config.h"
#include "model/g4_memory.h"
#include "model/g4_plan.h"

/* Fills s from the config: sequence_len, micro_batch_size, load_in_4bit, quantize_moe_experts,
 * adapter (empty = full fine-tuning), lora_r, the LoRA targets (lora_select), optimizer,
 * gradient_checkpointing. Errors (a regex that matches nothing) are located at the key. */
int trn_run_shape(const eft_config *c, const g4_plan *p, const g4_tensors *ts, g4_run_shape *s);

/* Fails on the first thing the config or the model needs that this build does not have yet. */
int trn_check_buildable(const eft_config *c, const g4_plan *p);

#endif
