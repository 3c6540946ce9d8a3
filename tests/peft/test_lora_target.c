/* test_lora_target.c: LoRA module selection follows PEFT's rules (full-match regex, suffix list,
 * all-linear, target_parameters), on the real variants' tensor lists. */
#include "support/test.h"

#include "base/err.h"
#include "io/config.h"
#include "model/g4_config.h"
#include "model/g4_plan.h"
#include "peft/lora_target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    g4_config mc;
    g4_plan plan;
    g4_tensors ts;
    bool *sel;
} fixture;

static void load_variant(fixture *f, const char *variant) {
    char *path = eft_asprintf("%s/tests/data_files/gemma4/%s/config.json", EFT_SOURCE_DIR, variant);
    assert_int_equal(g4_config_load(&f->mc, path), 0);
    eft_free(path);
    g4_plan_build(&f->plan, &f->mc);
    g4_tensors_build(&f->plan, &f->ts);
    f->sel = eft_calloc((size_t)f->ts.n, sizeof *f->sel);
}

static void free_variant(fixture *f) {
    eft_free(f->sel);
    g4_tensors_free(&f->ts);
    g4_plan_free(&f->plan);
    g4_config_free(&f->mc);
}

/* Selects with a config holding `yaml_tail` after a minimal head; returns lora_select's result. */
static int select_with(fixture *f, const char *yaml_tail) {
    char *text = eft_asprintf("base_model: x\ndatasets:\n  - path: d.jsonl\nadapter: lora\n"
                              "lora_r: 8\nlora_alpha: 16\nlearning_rate: 1e-4\n%s",
                              yaml_tail);
    eft_config c;
    assert_int_equal(cfg_load_string(&c, text, "t.yaml"), 0);
    int n = lora_select(&c, &f->ts, f->sel);
    cfg_free(&c);
    eft_free(text);
    return n;
}

static int count_kind(const fixture *f, g4_linear k) {
    int n = 0;
    for (int i = 0; i < f->ts.n; i++) n += f->sel[i] && f->ts.t[i].linear == k;
    return n;
}

static void test_axolotl_regex(void **state) {
    fixture f;
    load_variant(&f, "31b");
    /* The examples' regex: text attention and MLP projections, nothing else. */
    int n = select_with(&f, "lora_target_modules: 'model.language_model.layers.[\\d]+."
                            "(_checkpoint_wrapped_module.)?(mlp|self_attn).(up|down|gate|q|k|v|o)"
                            "_proj'\n");
    /* 60 layers x (q,k,o,gate,up,down) + v on the 50 sliding layers (k_eq_v full layers have
     * no v_proj). */
    assert_int_equal(n, 60 * 6 + 50);
    assert_int_equal(count_kind(&f, G4_LIN_V), 50);
    assert_int_equal(count_kind(&f, G4_LIN_Q), 60);
    free_variant(&f);
}

static void test_full_match_not_search(void **state) {
    fixture f;
    load_variant(&f, "e2b");
    /* re.fullmatch: "q_proj" alone matches no whole path ... */
    assert_int_equal(select_with(&f, "lora_target_modules: 'q_proj'\n"), -1);
    assert_contains(eft_err_msg(), "t.yaml:8:22: lora_target_modules: matches none");
    eft_err_clear();
    /* ... while the list form matches suffixes. KV-shared layers 15-34 have no k_proj. */
    assert_int_equal(select_with(&f, "lora_target_modules: [q_proj, k_proj]\n"), 35 + 15);
    assert_int_equal(count_kind(&f, G4_LIN_K), 15);
    /* A suffix must end at a dot: "proj" is not a suffix item of "q_proj". */
    assert_int_equal(select_with(&f, "lora_target_modules: [proj]\n"), -1);
    eft_err_clear();
    free_variant(&f);
}

static void test_all_linear(void **state) {
    fixture f;
    load_variant(&f, "e2b");
    int a = select_with(&f, "lora_target_linear: true\n");
    int b = select_with(&f, "lora_target_modules: all-linear\n");
    assert_int_equal(a, b);
    /* q,o,gate,up,down in all 35 layers, k,v in the 15 unshared ones, the two PLE linears in
     * every layer, and per_layer_model_projection once. */
    assert_int_equal(a, 35 * 5 + 15 * 2 + 35 * 2 + 1);
    assert_int_equal(count_kind(&f, G4_LIN_PLE_MODEL_PROJ), 1);
    free_variant(&f);
}

static void test_expert_parameters(void **state) {
    fixture f;
    load_variant(&f, "26b-a4b");
    int n = select_with(&f, "lora_target_modules: [q_proj]\nlora_target_parameters:\n"
                            "  - experts.gate_up_proj\n  - experts.down_proj\n");
    assert_int_equal(n, 30 + 2 * 30);
    assert_int_equal(count_kind(&f, G4_LIN_EXPERTS_DOWN), 30);
    free_variant(&f);
    load_variant(&f, "31b");
    assert_int_equal(select_with(&f, "lora_target_modules: [q_proj]\n"
                                     "lora_target_parameters: [experts.down_proj]\n"),
                     -1);
    assert_contains(eft_err_msg(), "lora_target_parameters: matches no parameter");
    eft_err_clear();
    free_variant(&f);
}

static void test_match_helpers(void **state) {
    assert_int_equal(lora_match_regex("a\\.b.*", "a.bcd"), 1);
    assert_int_equal(lora_match_regex("a\\.b", "a.bcd"), 0);
    assert_int_equal(lora_match_regex("(", "x"), -1);
    eft_err_clear();
    const char *items[] = {"q_proj", "mlp.down_proj"};
    assert_true(lora_match_suffix(items, 2, "model.layers.1.self_attn.q_proj"));
    assert_true(lora_match_suffix(items, 2, "model.layers.1.mlp.down_proj"));
    assert_false(lora_match_suffix(items, 2, "model.layers.1.self_attn.xq_proj"));
    assert_true(lora_match_suffix(items, 2, "q_proj"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_axolotl_regex), cmocka_unit_test(test_full_match_not_search),
        cmocka_unit_test(test_all_linear),    cmocka_unit_test(test_expert_parameters),
        cmocka_unit_test(test_match_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
