/* golden.h: eft against Hugging Face transformers (and PEFT), for the model tests.
 *
 * A golden file (tests/data_files/golden/<stem>.safetensors, written by tools/make_golden.py or
 * tools/make_peft_fixtures.py) holds what transformers computes in fp32 on the packed rows of
 * tests/data_files/golden/rows.jsonl: the loss, the logits of every row, and the gradient of
 * every trained tensor ("grad.<name>"), with the checkpoint's seed in its metadata. golden_check
 * rebuilds that checkpoint with `eft init-model`, runs `eft debug loss` (with the adapter folder
 * when given) and asserts: loss relative error <= 1e-5; logits max absolute error <= 1e-4; the
 * same set of gradients, each within 1e-4 relative L2; and that recompute (gradient
 * checkpointing) changes no bit of the gradients.
 */
#ifndef EFT_TEST_GOLDEN_H
#define EFT_TEST_GOLDEN_H

/* init_flags: extra `eft init-model` flags ("--text-only" or ""); adapter: the PEFT adapter folder
 * under the golden folder (e.g. "tiny-31b-lora"), or NULL for base-model gradients. */
void golden_check(const char *preset, const char *init_flags, const char *stem,
                  const char *adapter);
/* The same with extra `eft debug loss` flags (e.g. "--load-in-4bit"). When the reference records
 * "nf4_modules" (the quantised linears bitsandbytes ran), eft must report as many NF4 tensors. */
void golden_check_flags(const char *preset, const char *init_flags, const char *stem,
                        const char *adapter, const char *loss_flags);

#endif
