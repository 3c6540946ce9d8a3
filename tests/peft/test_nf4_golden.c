/* test_nf4_golden.c: QLoRA in eft against transformers + PEFT + bitsandbytes, without Python.
 *
 * tools/make_peft_fixtures.py recorded, for a PEFT adapter of tests/data_files/golden (the LoRA
 * goldens' own) on a base checkpoint loaded with BitsAndBytesConfig(load_in_4bit=True,
 * bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True), the loss, the logits and every
 * lora_A / lora_B gradient on the golden rows (tools/gemma4_golden.py --load-in-4bit):
 *
 *   tiny-e2b-qlora       bitsandbytes' own Linear4bit modules, fp32 compute (each weight the exact
 *                        fp32 product NF4 x absmax), PEFT's lora.bnb.Linear4bit; E2B-shaped, so
 *                        the per-layer-embedding linears are quantised and adapted too;
 *   tiny-31b-qlora-bf16  each quantised weight bitsandbytes' dequantisation to bf16 (what
 *                        Axolotl's bf16 QLoRA multiplies by) in an fp32 model;
 *   tiny-26b-a4b-qlora-experts  the same on 26B-A4B with quantize_moe_experts: each 3-D expert
 *                        tensor quantised whole (flattened) by bitsandbytes' quantize_4bit and
 *                        replaced by its dequantisation to bf16, as Axolotl's parametrization
 *                        computes it; the adapter has expert LoRA (target_parameters) and the
 *                        attention/MLP regex, so every expert's NF4 view and its LoRA are checked.
 *
 * eft rebuilds the checkpoint, loads it with `eft debug loss --load-in-4bit` (and
 * --bnb-4bit-compute-dtype float32 for the first, --quantize-moe-experts for the third), and must
 * agree as the other goldens do: loss relative error <= 1e-5, logits max absolute error <= 1e-4,
 * each adapter gradient's relative L2 error <= 1e-4, recompute changes no bit, and it quantises as
 * many tensors as the reference ran (linear weights, and expert tensors). The NF4 values themselves are checked bit for bit by test_nf4.c; a wrong
 * choice of quantised tensors, a transposed block layout or the wrong rounding mode moves these
 * gradients by far more than the tolerance.
 */
#include "support/golden.h"
#include "support/test.h"

static void test_e2b_fp32(void **state) {
    golden_check_flags("tiny-e2b", "", "tiny-e2b-qlora", "tiny-e2b-lora",
                       "--load-in-4bit --bnb-4bit-compute-dtype float32");
}
static void test_31b_bf16(void **state) {
    golden_check_flags("tiny-31b", "", "tiny-31b-qlora-bf16", "tiny-31b-lora", "--load-in-4bit");
}
static void test_26b_experts(void **state) {
    golden_check_flags("tiny-26b-a4b", "", "tiny-26b-a4b-qlora-experts", "tiny-26b-a4b-lora",
                       "--load-in-4bit --quantize-moe-experts");
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_e2b_fp32),
                                       cmocka_unit_test(test_31b_bf16),
                                       cmocka_unit_test(test_26b_experts)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
