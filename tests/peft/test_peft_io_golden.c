/* test_peft_io_golden.c: a PEFT adapter in eft against PEFT on transformers, without Python.
 *
 * tools/make_peft_fixtures.py made tests/data_files/golden/<name>-lora/ with PEFT itself
 * (get_peft_model on the checkpoint `eft init-model --seed S` wrote, lora_B set to random values,
 * save_pretrained) and recorded in <name>-lora.safetensors what transformers + PEFT compute on
 * the golden rows (fp32, eager): the loss, the logits and the gradient of every lora_A / lora_B
 * under its adapter_model.safetensors name. Here eft rebuilds the checkpoint, loads the adapter
 * (`eft debug loss --adapter`) and must agree as the base-model goldens do: loss relative error
 * <= 1e-5, logits max absolute error <= 1e-4, each adapter gradient's relative L2 error <= 1e-4,
 * the same set of gradients, and recompute changes no bit.
 *
 * tiny-31b-lora targets the Axolotl examples' regex (wrapper layout; the full layer has no
 * v_proj); tiny-e2b-lora a list of names with the per-layer-embedding linears (KV-shared layers
 * have no k/v projections); tiny-26b-a4b-lora the regex plus the expert tensors by
 * target_parameters (PEFT's ParamWrapper: gate_up_proj's adapter nested under "base_layer",
 * lora_B strided by expert). All have a non-zero B, so the adapter's forward, its scale and both
 * of its gradients are measured.
 */
#include "support/golden.h"
#include "support/test.h"

static void test_31b(void **state) {
    golden_check("tiny-31b", "", "tiny-31b-lora", "tiny-31b-lora");
}
static void test_e2b(void **state) {
    golden_check("tiny-e2b", "", "tiny-e2b-lora", "tiny-e2b-lora");
}

static void test_26b_a4b(void **state) {
    golden_check("tiny-26b-a4b", "", "tiny-26b-a4b-lora", "tiny-26b-a4b-lora");
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_31b), cmocka_unit_test(test_e2b),
                                       cmocka_unit_test(test_26b_a4b)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
