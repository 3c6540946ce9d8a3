/* test_g4_golden.c: eft's Gemma 4 against Hugging Face transformers, without Python.
 *
 * tools/make_golden.sh wrote tests/data_files/golden/<preset>.safetensors from transformers
 * (fp32, eager attention, eager experts): the loss, the logits and every parameter's gradient for
 * the packed rows of rows.jsonl (three rows; documents of 9, 1 and 14 tokens; a document with every
 * label ignored; sequences longer than the sliding windows). Here eft rebuilds the same checkpoints
 * (`eft init-model`, same seed), runs the same rows through `eft debug loss`, and compares:
 * loss relative error <= 1e-5, logits max absolute error <= 1e-4, each gradient tensor's
 * relative L2 error <= 1e-4. Gradient checkpointing must change no bit.
 *
 * Each fixture's seed is recorded in its file: make_golden.py keeps only draws for which
 * transformers' own fp32 gradients are within 2e-5 of fp64, so that the tolerance measures eft.
 */
#include "support/golden.h"
#include "support/test.h"

static void test_e2b(void **state) {
    golden_check("tiny-e2b", "", "tiny-e2b", NULL);
}
static void test_e2b_text(void **state) {
    golden_check("tiny-e2b", "--text-only", "tiny-e2b-text", NULL);
}
static void test_e4b(void **state) {
    golden_check("tiny-e4b", "", "tiny-e4b", NULL);
}
static void test_12b(void **state) {
    golden_check("tiny-12b", "", "tiny-12b", NULL);
}
static void test_31b(void **state) {
    golden_check("tiny-31b", "", "tiny-31b", NULL);
}
static void test_31b_text(void **state) {
    golden_check("tiny-31b", "--text-only", "tiny-31b-text", NULL);
}
/* The mixture-of-experts layers: router, top-k, experts, their three extra norms; every expert and
 * router gradient is compared (transformers' eager experts loop is the reference). */
static void test_26b_a4b(void **state) {
    golden_check("tiny-26b-a4b", "", "tiny-26b-a4b", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e2b),     cmocka_unit_test(test_e2b_text),
        cmocka_unit_test(test_e4b),     cmocka_unit_test(test_12b),
        cmocka_unit_test(test_31b),     cmocka_unit_test(test_31b_text),
        cmocka_unit_test(test_26b_a4b),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
