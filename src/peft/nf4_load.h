/* nf4_load.h: a Gemma 4 checkpoint loaded with its linear weights in NF4 (load_in_4bit, QLoRA).
 *
 * Every tensor g4_nf4_quantized accepts (the weights bitsandbytes swaps for Linear4bit, and with
 * quantize_moe_experts the 3-D expert tensors, each quantised whole, flattened, as Axolotl's
 * parametrization does) is quantised as it is read, from the checkpoint's mapped bf16 (or f16,
 * f32) bytes straight into owned NF4 storage (nf4_quantize: scratch of one tensor's n / 64 absmax
 * values), and the tensor's pages of the mapped file are released; the rest binds as
 * g4_weights_load binds it. So the model is never held in fp32, and after loading the process
 * holds about 4.13 bits per quantised weight (the experts run on views of their tensor, one per
 * expert: ops/nf4.h). The base stays frozen: QLoRA trains an adapter (full fine-tuning with
 * load_in_4bit is refused before this, by the config checks).
 *
 * Not here: the quantisation itself (nf4.h), which config keys choose the options (src/train).
 */
#ifndef EFT_PEFT_NF4_LOAD_H
#define EFT_PEFT_NF4_LOAD_H

#include "model/g4_weights.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct nf4_options {
    bool round_bf16;           /* dequantise to bf16 (bnb_4bit_compute_dtype bfloat16, Axolotl's
                                  QLoRA) rather than to the exact fp32 product (float32) */
    bool quantize_moe_experts; /* the 3-D expert tensors too */
} nf4_options;

/* g4_weights_load (frozen) with the linear weights in NF4. */
int nf4_weights_load(g4_weights *w, const g4_plan *p, const g4_tensors *ts, const char *path,
                     const nf4_options *o);

/* Bytes of NF4 storage the weights hold (nf4_bytes summed), and in *count (may be NULL) the
 * number of NF4 tensors. */
int64_t nf4_weights_bytes(const g4_weights *w, int *count);

#endif
