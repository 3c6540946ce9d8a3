/* trainer.h: `eft train` and `eft evaluate`: a config in, a trained model out.
 *
 *   config ─▶ tokenizer ─▶ prepared datasets ─▶ packed micro-batches ─┐
 *   base_model ─▶ weights (frozen bf16, or fp32 masters) ─▶ LoRA ─────┼─▶ steps ─▶ output_dir
 *
 * One update follows training-math.md section 1 exactly: the update's micro-batches, each forward
 * and backward with its loss scale (loss_normalization), the gradient norm and clipping, AdamW
 * at the schedule's rate, then log, evaluate and save (cadence.h). Everything the step needs is
 * allocated before step 0.
 *
 * output_dir (design.md section 6): adapter_model.safetensors + adapter_config.json (LoRA; PEFT
 * loads them) or model.safetensors + config.json (full fine-tuning), the tokenizer files,
 * metrics.jsonl, and checkpoint-<step>/ folders, each holding what a resume needs (adapter or
 * weights, optimizer state, trainer_state.json, eft_state.json). A resumed run continues
 * bit-exactly: the same adapter bytes as a run that never stopped. Ctrl-C or SIGTERM finishes
 * the update in flight, writes a checkpoint and exits. A NaN or infinite loss or gradient stops
 * the run with a message naming the step and the last good checkpoint.
 */
#ifndef EFT_TRAIN_TRAINER_H
#define EFT_TRAIN_TRAINER_H

#include "io/config.h"

/* The whole run. The config is loaded, overridden, validated and its paths resolved. */
int trn_train(const eft_config *c);

/* `eft evaluate`: the loss on the eval split and on the train split, with the adapter from
 * lora_model_dir when set; prints {"eval_loss": ..., "train_loss": ...}. */
int trn_evaluate(const eft_config *c);

#endif
