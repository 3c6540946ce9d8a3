/* test_config_validate.c: the rules across keys (cfg_validate), each with the place it names. */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/config.h"

#include <string.h>

#define OK   "base_model: m\nlearning_rate: 0.1\ndatasets: [{path: d.jsonl}]\n"
#define LORA OK "adapter: lora\nlora_r: 8\nlora_alpha: 16\n"

static int load_validate(const char *text) {
    eft_config c;
    eft_err_clear();
    int rc = cfg_load_string(&c, text, "cfg.yaml");
    if (rc == 0) rc = cfg_validate(&c);
    cfg_free(&c);
    return rc;
}

static void valid(const char *text) {
    if (load_validate(text)) fail_msg("%s\n---\n%s", eft_err_msg(), text);
}

static void invalid(const char *text, const char *want) {
    if (load_validate(text) == 0) fail_msg("validated:\n%s", text);
    assert_contains(eft_err_msg(), want);
}

static void test_required(void **state) {
    valid(OK);
    char *path = eft_path_join(EFT_SOURCE_DIR, "tests/data_files/configs/minimal.yaml");
    eft_config c;
    assert_int_equal(cfg_load(&c, path), 0);
    assert_int_equal(cfg_validate(&c), 0);
    assert_true(c.learning_rate.v == 2e-4);
    assert_null(c.adapter.v); /* no adapter: a full fine-tune */
    cfg_free(&c);
    eft_free(path);
    invalid("learning_rate: 0.1\ndatasets: [{path: d}]\n", "cfg.yaml: base_model is missing");
    invalid("base_model: m\nlearning_rate: 0.1\n", "cfg.yaml: datasets is missing");
    invalid("base_model: m\nlearning_rate: 0.1\ndatasets: []\n",
            "cfg.yaml:3:11: datasets: the list is empty");
    invalid("base_model: m\ndatasets: [{path: d}]\n", "cfg.yaml: learning_rate is missing");
    invalid("base_model: m\nlearning_rate: 0.1\ndatasets:\n  - type: completion\n",
            "cfg.yaml:4:5: datasets[0]: path is missing");
    invalid(OK "test_datasets:\n  - split: test\n",
            "cfg.yaml:5:5: test_datasets[0]: path is missing");
}

static void test_adapter_rules(void **state) {
    valid(LORA);
    valid(OK "adapter: qlora\nload_in_4bit: true\nlora_r: 8\nlora_alpha: 16\n");
    invalid(OK "adapter: qlora\nlora_r: 8\nlora_alpha: 16\n",
            "cfg.yaml:4:10: adapter: qlora needs load_in_4bit: true");
    invalid(OK "load_in_4bit: true\n", "cfg.yaml:4:15: load_in_4bit: a 4-bit base cannot be "
                                       "trained without an adapter");
    invalid(OK "adapter: lora\nlora_alpha: 16\n", "cfg.yaml:4:10: adapter: lora needs lora_r");
    invalid(OK "adapter: lora\nlora_r: 16\n", "adapter: lora needs lora_alpha");
    valid(OK "adapter: lora\nlora_model_dir: ./old-adapter\n"); /* r and alpha from the adapter */
    invalid(LORA "lora_dropout: 1.0\n", "cfg.yaml:7:15: lora_dropout: must be in [0, 1)");
    invalid(LORA "lora_dropout: 0.1\nlora_target_parameters: [experts.down_proj]\n",
            "cfg.yaml:7:15: lora_dropout: must be 0 with lora_target_parameters");
    invalid(LORA "quantize_moe_experts: true\n", "quantize_moe_experts: needs an adapter and "
                                                 "load_in_4bit: true");
    invalid(LORA "lora_rank_pattern: {q_proj: 0}\n", "cfg.yaml:7:29: lora_rank_pattern: q_proj: "
                                                     "must be at least 1");
    invalid(LORA "lora_alpha_pattern: {q_proj: big}\n", "lora_alpha_pattern.q_proj: expected an "
                                                        "integer");
    invalid(LORA "peft_autocast_adapter_dtype: false\n", "peft_autocast_adapter_dtype: false is "
                                                         "not supported yet");
    invalid(LORA "load_in_4bit: true\nbnb_config_kwargs: {bnb_4bit_quant_type: fp4}\n",
            "bnb_config_kwargs.bnb_4bit_quant_type: fp4 is not supported yet by eft; use nf4.");
    invalid(LORA "load_in_4bit: true\nbnb_config_kwargs: {bnb_4bit_use_double_quant: maybe}\n",
            "bnb_config_kwargs.bnb_4bit_use_double_quant: expected a boolean");
}

static void test_schedule_rules(void **state) {
    valid(OK "warmup_steps: 0\nwarmup_ratio: 0.1\n"); /* 0 counts as unset, as in Axolotl */
    invalid(OK "warmup_steps: 10\nwarmup_ratio: 0.1\n",
            "cfg.yaml:5:15: warmup_ratio: warmup_steps and warmup_ratio are mutually exclusive");
    invalid(OK "warmup_ratio: 1.5\n", "warmup_ratio: must be in [0, 1]");
    invalid(
        OK "gradient_accumulation_steps: 4\nbatch_size: 16\n",
        "cfg.yaml:5:13: batch_size: set only one of gradient_accumulation_steps and batch_size");
    valid(OK "micro_batch_size: 2\nbatch_size: 16\n");
    invalid(OK "micro_batch_size: 3\nbatch_size: 16\n", "batch_size: 16 is not a multiple of "
                                                        "micro_batch_size (3)");
    invalid(OK "adam_beta2: 1.0\n", "cfg.yaml:4:13: adam_beta2: must be in [0, 1)");
    valid(OK "lr_scheduler: cosine_with_min_lr\nlr_scheduler_kwargs: {min_lr_rate: 0.1}\n");
    valid(OK "lr_scheduler: cosine_with_min_lr\nlr_scheduler_kwargs: {min_lr: 1e-6}\n");
    invalid(OK "lr_scheduler: cosine_with_min_lr\n",
            "cfg.yaml:4:15: lr_scheduler: cosine_with_min_lr needs exactly one of min_lr_rate");
    invalid(OK "lr_scheduler: cosine_with_min_lr\nlr_scheduler_kwargs: {min_lr_rate: 0.1, "
               "min_lr: 1e-6}\n",
            "cfg.yaml:5:22: lr_scheduler: cosine_with_min_lr needs exactly one of min_lr_rate (a "
            "fraction of learning_rate) or min_lr in lr_scheduler_kwargs, not both.");
    invalid(OK "lr_scheduler_kwargs: {num_cycles: many}\n", "lr_scheduler_kwargs.num_cycles: "
                                                            "expected a number");
    invalid("base_model: m\nlearning_rate: 1e-8\ndatasets: [{path: d}]\nlr_scheduler: polynomial\n",
            "cfg.yaml:2:16: learning_rate: polynomial decays to lr_end = 1e-07");
    invalid(OK "cosine_min_lr_ratio: 2\n", "cosine_min_lr_ratio: must be in [0, 1]");
}

static void test_eval_save_rules(void **state) {
    valid(OK "val_set_size: 0.05\nevals_per_epoch: 4\nsaves_per_epoch: 1\n");
    invalid(OK "val_set_size: 1.0\n", "cfg.yaml:4:15: val_set_size: must be a fraction in [0, 1)");
    invalid(OK "val_set_size: -0.1\n", "val_set_size: must be a fraction in [0, 1)");
    invalid(OK "val_set_size: 0.1\nevals_per_epoch: 4\neval_steps: 10\n",
            "cfg.yaml:6:13: eval_steps: eval_steps and evals_per_epoch are mutually exclusive");
    invalid(OK "saves_per_epoch: 2\nsave_steps: 0.5\n",
            "cfg.yaml:5:13: save_steps: save_steps and saves_per_epoch are mutually exclusive");
    invalid(OK "val_set_size: 0.1\neval_steps: 10\neval_strategy: epoch\n",
            "eval_strategy: must be steps (or unset) when eval_steps is set");
    invalid(OK "save_steps: 10\nsave_strategy: epoch\n", "save_strategy: must be steps");
    invalid(OK "eval_steps: 10\n", "cfg.yaml:4:13: eval_steps: there is no eval data");
    valid(OK "eval_strategy: \"no\"\n");
    invalid(OK "val_set_size: 0.1\ntest_datasets: [{path: t}]\n",
            "val_set_size: a non-zero val_set_size cannot be used with test_datasets");
    invalid(OK "save_safetensors: false\n", "save_safetensors: eft writes safetensors only");
    invalid(OK "dynamic_checkpoint: {enabled: sure}\n", "dynamic_checkpoint.enabled: expected a "
                                                        "boolean");
    invalid(OK "save_strategy: best\n", "save_strategy: best is not supported yet by eft");
}

static void test_token_and_dataset_rules(void **state) {
    valid(OK "special_tokens: {pad_token: \"<pad>\", additional_special_tokens: [\"<x>\"]}\n");
    invalid(OK "special_tokens: {padding: \"<pad>\"}\n",
            "cfg.yaml:4:18: special_tokens: unknown token \"padding\"");
    invalid(OK "special_tokens: {pad_token: 0}\n", "special_tokens: pad_token: expected a token "
                                                   "string, found 0");
    invalid(
        "base_model: m\nlearning_rate: 1\ndatasets:\n  - path: d\n    roles: {assistant: gpt}\n",
        "cfg.yaml:5:13: datasets[0]: roles.assistant must be a list");
    invalid("base_model: m\nlearning_rate: 1\ndatasets:\n  - path: d\n"
            "    message_property_mappings: {role: [a]}\n",
            "datasets[0]: message_property_mappings.role must name a field");
    invalid("base_model: m\nlearning_rate: 1\ndatasets:\n  - path: d\n    shards: 2\n"
            "    shards_idx: 2\n",
            "cfg.yaml:6:17: datasets[0]: shards_idx 2 is out of range for shards: 2");
}

int main(void) {
    eft_log_set_level(EFT_LOG_QUIET);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_adapter_rules),
        cmocka_unit_test(test_schedule_rules),
        cmocka_unit_test(test_eval_save_rules),
        cmocka_unit_test(test_token_and_dataset_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
