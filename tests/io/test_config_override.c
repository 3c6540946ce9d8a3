/* test_config_override.c: `--key value` overrides, as `eft train CONFIG --lora-r 32` passes
 * them: dashes or underscores, `=`, YAML typing, lists, boolean flags, the command's own flags
 * left in place, and errors that say "command line". */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/config.h"

#include <string.h>

static void load_fixture(eft_config *c) {
    char *path = eft_path_join(EFT_SOURCE_DIR, "tests/data_files/configs/lora.yaml");
    eft_err_clear();
    if (cfg_load(c, path)) fail_msg("%s", eft_err_msg());
    eft_free(path);
}

static void test_single_overrides(void **state) {
    eft_config c;
    load_fixture(&c);
    assert_int_equal(cfg_apply_override(&c, "learning-rate", "1e-4"), 0);
    assert_true(c.learning_rate.v == 1e-4);
    assert_string_equal(c.learning_rate.at.file, "command line");
    assert_int_equal(c.learning_rate.at.line, 0);
    assert_int_equal(cfg_apply_override(&c, "--micro_batch_size", "4"), 0);
    assert_int_equal(c.micro_batch_size.v, 4);
    /* A string key takes the text as written, numbers included. */
    assert_int_equal(cfg_apply_override(&c, "output-dir", "123"), 0);
    assert_string_equal(c.output_dir.v, "123");
    assert_int_equal(cfg_apply_override(&c, "lora_target_modules", "model.layers.[\\d]+.q: x"), 0);
    assert_true(c.lora_target_modules.single_string);
    assert_string_equal(c.lora_target_modules.v[0], "model.layers.[\\d]+.q: x");
    assert_int_equal(cfg_apply_override(&c, "lora-target-modules", "[q_proj, v_proj, o_proj]"), 0);
    assert_false(c.lora_target_modules.single_string);
    assert_int_equal(c.lora_target_modules.n, 3);
    assert_string_equal(c.lora_target_modules.v[2], "o_proj");
    assert_int_equal(cfg_apply_override(&c, "eot-tokens", "<turn|>"), 0);
    assert_int_equal(c.eot_tokens.n, 1);
    assert_string_equal(c.eot_tokens.v[0], "<turn|>");
    assert_int_equal(cfg_apply_override(&c, "lr-scheduler-kwargs", "{min_lr: 1e-6}"), 0);
    assert_non_null(cfg_map_find(&c.lr_scheduler_kwargs, "min_lr"));
    assert_null(cfg_map_find(&c.lr_scheduler_kwargs, "min_lr_rate"));
    assert_int_equal(cfg_apply_override(&c, "bf16", "auto"), 0);
    assert_string_equal(c.bf16.v, "auto");
    /* An empty value resets the key: no adapter means a full fine-tune. */
    assert_int_equal(cfg_apply_override(&c, "adapter", ""), 0);
    assert_null(c.adapter.v);
    assert_false(c.adapter.set);
    assert_int_equal(cfg_apply_override(&c, "seed", ""), 0);
    assert_int_equal(c.seed.v, 42);
    cfg_free(&c);
}

static void override_fails(const char *key, const char *value, const char *want) {
    eft_config c;
    load_fixture(&c);
    assert_int_equal(cfg_apply_override(&c, key, value), -1);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    assert_contains(eft_err_msg(), want);
    cfg_free(&c);
}

static void test_override_errors(void **state) {
    override_fails("lora-r", "sixteen",
                   "command line: --lora-r: expected an integer, found "
                   "\"sixteen\". Write a whole number.");
    override_fails("lora_r", "0", "command line: --lora-r: must be at least 1");
    override_fails("sample-packing", "maybe", "command line: --sample-packing: expected a boolean");
    override_fails("lora-rr", "8", "command line: --lora-rr: unknown key; did you mean --lora-r?");
    override_fails("qqqzzzxxx", "8", "command line: --qqqzzzxxx: unknown key. `eft config-schema`");
    override_fails("load-in-8bit", "true",
                   "command line: --load-in-8bit: not supported yet by eft");
    override_fails("optimizer", "lion_8bit",
                   "command line: --optimizer: lion_8bit is not "
                   "supported yet");
    override_fails("lora-target-modules", "[q_proj, [v]]",
                   "command line: --lora-target-modules: "
                   "expected a string, found a list");
    override_fails("learning-rate", "[1",
                   "command line: --learning-rate: cannot read \"[1\" as a "
                   "YAML value: did not find expected ',' or ']'");
    /* no_effect keys are still accepted, and noted. */
    eft_config c;
    load_fixture(&c);
    assert_int_equal(cfg_apply_override(&c, "torch-compile", "true"), 0);
    char *list = cfg_no_effect_list(&c);
    assert_string_equal(list, "torch_compile");
    eft_free(list);
    cfg_free(&c);
}

static void test_argv(void **state) {
    char *argv[] = {"train",
                    "cfg.yaml",
                    "--lora-r",
                    "32",
                    "--micro_batch_size=2",
                    "--dry-run",
                    "--lora-target-modules",
                    "[q_proj, v_proj]",
                    "--sample-packing",
                    "--no-train-on-inputs",
                    "--dump",
                    "x.jsonl",
                    "--bf16",
                    "false",
                    "--gradient-checkpointing",
                    "--",
                    "--lora-r",
                    "7",
                    NULL};
    int argc = (int)EFT_ARRAY_LEN(argv) - 1;
    const char *keep[] = {"dry-run", "dump=", NULL};
    eft_config c;
    load_fixture(&c);
    c.sample_packing.v = false;
    c.train_on_inputs.v = true;
    assert_int_equal(cfg_apply_overrides(&c, &argc, argv, keep), 0);
    assert_int_equal(c.lora_r.v, 32);
    assert_int_equal(c.micro_batch_size.v, 2);
    assert_int_equal(c.lora_target_modules.n, 2);
    assert_true(c.sample_packing.v);   /* a boolean flag alone is true */
    assert_false(c.train_on_inputs.v); /* --no-KEY is false */
    assert_string_equal(c.bf16.v, "false");
    assert_string_equal(c.gradient_checkpointing.v, "true"); /* followed by "--": alone */
    /* What is left: the positional, the command's own flags, and everything after "--". */
    assert_int_equal(argc, 8);
    const char *left[] = {"train",   "cfg.yaml", "--dry-run", "--dump",
                          "x.jsonl", "--",       "--lora-r",  "7"};
    for (int i = 0; i < argc; i++) assert_string_equal(argv[i], left[i]);
    assert_null(argv[argc]);
    cfg_free(&c);

    char *bad[] = {"train", "cfg.yaml", "--learning-rate", NULL};
    argc = 3;
    load_fixture(&c);
    assert_int_equal(cfg_apply_overrides(&c, &argc, bad, NULL), -1);
    assert_contains(eft_err_msg(), "command line: --learning-rate needs a value");
    cfg_free(&c);

    char *typo[] = {"train", "--dry-runn", NULL};
    argc = 2;
    load_fixture(&c);
    assert_int_equal(cfg_apply_overrides(&c, &argc, typo, keep), -1);
    assert_contains(eft_err_msg(), "--dry-runn: unknown key");
    cfg_free(&c);
}

/* An override and then validation: the error points at the command line. */
static void test_validate_after_override(void **state) {
    eft_config c;
    load_fixture(&c);
    assert_int_equal(cfg_apply_override(&c, "adapter", "qlora"), 0);
    assert_int_equal(cfg_validate(&c), -1);
    assert_string_equal(eft_err_msg(), "command line: adapter: qlora needs load_in_4bit: true "
                                       "(QLoRA trains against a 4-bit base). Add it, or use "
                                       "adapter: lora.");
    assert_int_equal(cfg_apply_override(&c, "load-in-4bit", "yes"), 0);
    assert_int_equal(cfg_validate(&c), 0);
    cfg_free(&c);
}

int main(void) {
    eft_log_set_level(EFT_LOG_QUIET);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_overrides),
        cmocka_unit_test(test_override_errors),
        cmocka_unit_test(test_argv),
        cmocka_unit_test(test_validate_after_override),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
