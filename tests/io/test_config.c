/* test_config.c: loading configs: YAML 1.1 typing as Axolotl reads it, statuses (not_yet errors,
 * no-effect list), unknown keys, located errors, and a full fixture's typed values. */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/config.h"

#include <math.h>
#include <string.h>

#define BASE "base_model: m\nlearning_rate: 0.1\ndatasets: [{path: d.jsonl}]\n"

/* Loads text as "cfg.yaml"; returns cfg_load's result. */
static int load(eft_config *c, const char *text) {
    eft_err_clear();
    return cfg_load_string(c, text, "cfg.yaml");
}

/* Loads text that must fail, and checks the message contains `want`. */
static void load_fails(const char *text, const char *want) {
    eft_config c;
    if (load(&c, text) == 0) fail_msg("loaded without error:\n%s", text);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    assert_contains(eft_err_msg(), want);
    cfg_free(&c);
}

static void test_yaml11_booleans(void **state) {
    /* Every spelling PyYAML resolves as a boolean, then the strings pydantic reads as one. */
    static const struct {
        const char *text;
        bool v;
    } cases[] = {
        {"yes", 1},   {"Yes", 1},    {"YES", 1},   {"no", 0},    {"No", 0},      {"NO", 0},
        {"true", 1},  {"True", 1},   {"TRUE", 1},  {"false", 0}, {"False", 0},   {"FALSE", 0},
        {"on", 1},    {"On", 1},     {"ON", 1},    {"off", 0},   {"Off", 0},     {"OFF", 0},
        {"y", 1},     {"Y", 1},      {"n", 0},     {"N", 0},     {"1", 1},       {"0", 0},
        {"1.0", 1},   {"\"t\"", 1},  {"\"F\"", 0}, {"'yes'", 1}, {"\"OFF\"", 0}, {"\"1\"", 1},
        {"\"0\"", 0}, {"'TrUe'", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *text = eft_asprintf(BASE "sample_packing: %s\n", cases[i].text);
        eft_config c;
        if (load(&c, text)) fail_msg("sample_packing: %s: %s", cases[i].text, eft_err_msg());
        assert_true(c.sample_packing.set);
        if (c.sample_packing.v != cases[i].v)
            fail_msg("sample_packing: %s read wrong", cases[i].text);
        cfg_free(&c);
        eft_free(text);
    }
    load_fails(BASE "sample_packing: 2\n",
               "cfg.yaml:4:17: sample_packing: expected a boolean (true or false), found 2");
    load_fails(BASE "sample_packing: maybe\n", "found \"maybe\"");
    load_fails(BASE "sample_packing: [true]\n", "found a list");
    load_fails(BASE "sample_packing: \"true \"\n", "expected a boolean");
}

static void test_numbers(void **state) {
    eft_config c;
    /* 2e-4 is a YAML 1.1 string; a float key reads it as a number, as pydantic does. */
    static const struct {
        const char *text;
        double v;
    } floats[] = {{"2e-4", 2e-4},       {"1e3", 1000},       {".5", 0.5},  {"3", 3},
                  {"\"0.0002\"", 2e-4}, {"1_000.5", 1000.5}, {"0x10", 16}, {"1.0e+4", 1e4},
                  {"' 2 '", 2},         {"+0.25", 0.25}};
    for (size_t i = 0; i < sizeof floats / sizeof *floats; i++) {
        char *text = eft_asprintf("base_model: m\ndatasets: [{path: d}]\nlearning_rate: %s\n",
                                  floats[i].text);
        if (load(&c, text)) fail_msg("learning_rate: %s: %s", floats[i].text, eft_err_msg());
        if (c.learning_rate.v != floats[i].v)
            fail_msg("learning_rate: %s read as %g", floats[i].text, c.learning_rate.v);
        cfg_free(&c);
        eft_free(text);
    }
    load_fails("learning_rate: .inf\n", "learning_rate: expected a finite number, found .inf");
    load_fails("learning_rate: \"nan\"\n", "expected a finite number");
    load_fails("learning_rate: fast\n", "cfg.yaml:1:16: learning_rate: expected a number, found "
                                        "\"fast\". Write a number such as 0.0002 or 2e-4.");
    load_fails("learning_rate: \"0x10\"\n", "expected a number"); /* Python float() refuses it */
    load_fails("learning_rate: true\n", "found true (a boolean)");

    static const struct {
        const char *text;
        int64_t v;
    } ints[] = {{"16", 16},   {"16.0", 16}, {"\"16\"", 16},   {"'1_000'", 1000},
                {"0x20", 32}, {"017", 15},  {"\"16.00\"", 16}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        char *text = eft_asprintf(BASE "lora_r: %s\n", ints[i].text);
        if (load(&c, text)) fail_msg("lora_r: %s: %s", ints[i].text, eft_err_msg());
        assert_int_equal(c.lora_r.v, ints[i].v);
        cfg_free(&c);
        eft_free(text);
    }
    load_fails(
        BASE "lora_r: sixteen\n",
        "cfg.yaml:4:9: lora_r: expected an integer, found \"sixteen\". Write a whole number.");
    load_fails(BASE "lora_r: 16.5\n", "lora_r: expected an integer, found 16.5 (a number)");
    load_fails(BASE "lora_r: 1e3\n", "expected an integer"); /* pydantic refuses it too */
    load_fails(BASE "lora_r: true\n", "expected an integer, found true (a boolean)");
    load_fails(BASE "lora_r: 0\n", "lora_r: must be at least 1, found 0");
    load_fails(BASE "micro_batch_size: 0\n", "cfg.yaml:4:19: micro_batch_size: must be at least 1");
    load_fails(BASE "weight_decay: -0.1\n", "weight_decay: must be 0 or more");
}

static void test_empty_values_take_defaults(void **state) {
    eft_config c;
    assert_int_equal(load(&c, BASE "lora_r:\noptimizer:\nsequence_len: ~\nspecial_tokens:\n"), 0);
    assert_false(c.lora_r.set);
    assert_false(c.optimizer.set);
    assert_string_equal(c.optimizer.v, "adamw_torch_fused");
    assert_false(c.sequence_len.set);
    assert_int_equal(c.sequence_len.v, 512);
    assert_false(c.special_tokens.set);
    /* The documented defaults of unset keys. */
    assert_int_equal(c.micro_batch_size.v, 1);
    assert_int_equal(c.gradient_accumulation_steps.v, 1);
    assert_true(c.num_epochs.v == 1.0);
    assert_string_equal(c.lr_scheduler.v, "cosine");
    assert_true(c.weight_decay.v == 0 && c.max_grad_norm.v == 1.0);
    assert_true(c.adam_beta1.v == 0.9 && c.adam_beta2.v == 0.999 && c.adam_epsilon.v == 1e-8);
    assert_string_equal(c.output_dir.v, "./model-out");
    assert_int_equal(c.save_total_limit.v, 4);
    assert_true(c.val_set_size.v == 0);
    assert_int_equal(c.seed.v, 42);
    assert_true(c.lora_dropout.v == 0);
    assert_string_equal(c.bf16.v, "auto");
    assert_string_equal(c.gradient_checkpointing.v, "false");
    assert_string_equal(c.loss_normalization.v, "tokens");
    assert_true(c.save_safetensors.v && c.include_tkps.v && c.shuffle_merged_datasets.v);
    assert_false(c.warmup_steps.set || c.logging_steps.set || c.eval_sample_packing.set);
    assert_string_equal(c.datasets.v[0].field_messages.v, "messages");
    assert_string_equal(c.datasets.v[0].train_on_eos.v, "turn");
    assert_int_equal(c.datasets.v[0].roles_to_train.n, 1);
    assert_string_equal(c.datasets.v[0].roles_to_train.v[0], "assistant");
    assert_false(c.datasets.v[0].roles_to_train.set);
    cfg_free(&c);
}

static void test_strings_and_quoting(void **state) {
    eft_config c;
    assert_int_equal(load(&c, BASE "dataset_prepared_path: \"yes\"\noutput_dir: '123'\n"), 0);
    assert_string_equal(c.dataset_prepared_path.v, "yes");
    assert_string_equal(c.output_dir.v, "123");
    cfg_free(&c);
    load_fails(BASE "dataset_prepared_path: yes\n",
               "cfg.yaml:4:24: dataset_prepared_path: expected a string, found yes (a boolean). "
               "Quote it if you mean the text: \"yes\".");
    load_fails(BASE "output_dir: 1.5\n", "output_dir: expected a string, found 1.5 (a number)");
    load_fails(BASE "output_dir: [a]\n", "expected a string, found a list");
}

static void test_string_or_list(void **state) {
    eft_config c;
    assert_int_equal(load(&c, BASE "lora_target_modules: 'layers.[\\d]+.(q|v)_proj'\n"), 0);
    assert_true(c.lora_target_modules.single_string);
    assert_int_equal(c.lora_target_modules.n, 1);
    assert_string_equal(c.lora_target_modules.v[0], "layers.[\\d]+.(q|v)_proj");
    cfg_free(&c);
    assert_int_equal(load(&c, BASE "lora_target_modules:\n  - q_proj\n  - v_proj\n"), 0);
    assert_false(c.lora_target_modules.single_string);
    assert_int_equal(c.lora_target_modules.n, 2);
    assert_string_equal(c.lora_target_modules.v[1], "v_proj");
    assert_int_equal(c.lora_target_modules.v_at[1].line, 6);
    assert_int_equal(c.lora_target_modules.v_at[1].col, 5);
    cfg_free(&c);
    load_fails(BASE "lora_target_modules: [q_proj, 7]\n",
               "cfg.yaml:4:31: lora_target_modules: expected a string, found 7");
    load_fails(BASE "eot_tokens: \"<turn|>\"\n", "eot_tokens: expected a list of strings");
}

static void test_steps_and_choices(void **state) {
    eft_config c;
    assert_int_equal(load(&c, BASE "val_set_size: 0.1\neval_steps: 0.25\nsave_steps: 10\n"
                                   "bf16: full\ngradient_checkpointing: offload\n"
                                   "activation_offloading: True\noptimizer: ao_adamw_8bit\n"),
                     0);
    assert_true(c.eval_steps.v == 0.25 && c.save_steps.v == 10);
    assert_string_equal(c.bf16.v, "full");
    assert_string_equal(c.gradient_checkpointing.v, "offload");
    assert_string_equal(c.activation_offloading.v, "true");
    assert_string_equal(c.optimizer.v, "adamw_torch_8bit"); /* deprecated alias, canonical */
    cfg_free(&c);
    load_fails(BASE "save_steps: 2.5\n", "save_steps: expected a whole number of steps >= 1 or "
                                         "a fraction in (0, 1), found 2.5");
    load_fails(BASE "bf16: banana\n", "bf16: unknown value \"banana\"; expected true, false or "
                                      "auto, full.");
    load_fails(BASE "optimizer: lion_8bit\n",
               "cfg.yaml:4:12: optimizer: lion_8bit is not supported yet by eft; use "
               "adamw_torch_fused, adamw_torch, adamw_torch_8bit");
    load_fails(BASE "optimizer: adamw\n", "optimizer: unknown value \"adamw\"; expected one of: "
                                          "adamw_torch_fused, adamw_torch, adamw_torch_8bit");
    load_fails(BASE "lr_scheduler: one_cycle\n", "lr_scheduler: one_cycle is not supported yet");
    load_fails(BASE "chat_template: llama3\n", "chat_template: llama3 is not supported yet by "
                                               "eft; eft renders the Gemma 4 templates");
    load_fails(BASE "chat_template: gemma5\n", "unknown value \"gemma5\"; expected one of: "
                                               "gemma4, gemma4_unified, tokenizer_default");
    load_fails(BASE "adapter: llama-adapter\n", "adapter: llama-adapter is not supported yet");
    load_fails(BASE "adapter: dora\n", "expected one of: lora, qlora");
    /* attn_implementation has no effect, but its value is still checked, as Axolotl does. */
    assert_int_equal(load(&c, BASE "attn_implementation: kernels-community/flash-attn3\n"), 0);
    cfg_free(&c);
    load_fails(BASE "attn_implementation: flash\n", "attn_implementation: unknown value \"flash\"");
}

static void test_maps(void **state) {
    eft_config c;
    assert_int_equal(load(&c, BASE "lr_scheduler_kwargs: {min_lr_rate: 0.1, num_cycles: \"2\"}\n"
                                   "bnb_config_kwargs:\n  bnb_4bit_use_double_quant: yes\n"
                                   "  llm_int8_skip_modules: [lm_head, vision]\n"),
                     0);
    double x = 0;
    int64_t n = 0;
    bool b = false;
    assert_int_equal(
        cfg_map_float(&c.lr_scheduler_kwargs, "min_lr_rate", &x, "lr_scheduler_kwargs"), 0);
    assert_true(x == 0.1);
    assert_int_equal(cfg_map_int(&c.lr_scheduler_kwargs, "num_cycles", &n, "lr_scheduler_kwargs"),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(cfg_map_bool(&c.bnb_config_kwargs, "bnb_4bit_use_double_quant", &b, "bnb"), 0);
    assert_true(b);
    const cfg_map_item *it = cfg_map_find(&c.bnb_config_kwargs, "llm_int8_skip_modules");
    assert_non_null(it);
    assert_true(it->is_list);
    assert_int_equal(it->n, 2);
    assert_string_equal(it->v[1].text, "vision");
    assert_int_equal(it->v[0].at.line, 7);
    /* A typed read of the wrong type names the place of the value. */
    assert_int_equal(cfg_map_bool(&c.lr_scheduler_kwargs, "min_lr_rate", &b, "lr_scheduler_kwargs"),
                     -1);
    assert_contains(eft_err_msg(),
                    "cfg.yaml:4:36: lr_scheduler_kwargs.min_lr_rate: expected a boolean");
    /* Absent: 0, and the value untouched. */
    x = 7;
    assert_int_equal(cfg_map_float(&c.lr_scheduler_kwargs, "min_lr", &x, "lr_scheduler_kwargs"), 0);
    assert_true(x == 7);
    cfg_free(&c);
    load_fails(BASE "lr_scheduler_kwargs:\n  inner: {a: 1}\n",
               "cfg.yaml:5:10: lr_scheduler_kwargs.inner: expected a value or a list of values, "
               "found a mapping");
    load_fails(BASE "lr_scheduler_kwargs: [1, 2]\n", "expected a mapping");
}

static void test_not_yet_and_no_effect(void **state) {
    eft_config c;
    /* A not_yet key set to false or left empty is harmless and silent. */
    assert_int_equal(load(&c, BASE "load_in_8bit: false\npeft_use_dora: no\nskip_prepare_dataset:\n"
                                   "fsdp: []\nplugins:\n  - a.B\nliger_rms_norm: true\n"
                                   "torch_compile: auto\nwandb_project:\nwandb_name:\n"),
                     0);
    char *list = cfg_no_effect_list(&c);
    assert_string_equal(list, "plugins, liger_rms_norm, torch_compile, wandb_project, wandb_name");
    eft_free(list);
    cfg_free(&c);
    load_fails(BASE "load_in_8bit: true\n",
               "cfg.yaml:4:1: load_in_8bit: not supported yet by eft. Remove it or set it to "
               "false; use load_in_4bit: true with adapter: qlora.");
    load_fails(BASE "wandb_project: my-run\n", "wandb_project: not supported yet by eft");
    load_fails(BASE "hub_model_id: me/model\n", "huggingface-cli upload");
    load_fails(BASE "deepspeed: zero2.json\n", "deepspeed: not supported yet by eft. Remove it: "
                                               "eft trains on one device");
    /* A no_effect key of the wrong type is still an error (Axolotl would refuse it). */
    load_fails(BASE "liger_rms_norm: fast\n", "liger_rms_norm: expected a boolean");
    /* Every problem is named in one message: the first in full, the others by place. */
    load_fails(BASE "processor_type: AutoProcessor\nlora_r: x\ntokens: [a]\n",
               "cfg.yaml:4:1: processor_type: not supported yet by eft. Remove it: eft trains the "
               "Gemma 4 text backbone; multimodal training is not supported yet. Also: lora_r "
               "(5:9), tokens (6:1).");
}

static void test_unknown_keys(void **state) {
    eft_config c;
    assert_int_equal(load(&c, BASE "lora_rr: 8\nzzqqxxyy: 1\n"), 0);
    assert_int_equal(c.n_warnings, 2);
    assert_string_equal(c.warnings[0],
                        "cfg.yaml:4:1: unknown key \"lora_rr\"; did you mean \"lora_r\"?");
    assert_string_equal(c.warnings[1], "cfg.yaml:5:1: unknown key \"zzqqxxyy\"; eft ignores it "
                                       "(`eft config-schema` lists the keys).");
    cfg_free(&c);
    /* strict: true turns them into errors, even when strict comes after the key. */
    load_fails(BASE "learning_rat: 0.1\nstrict: true\n",
               "cfg.yaml:4:1: unknown key \"learning_rat\"; did you mean \"learning_rate\"? "
               "(strict: true makes this an error");
    /* Inside a dataset, against the dataset keys. */
    assert_int_equal(load(&c, "base_model: m\ndatasets:\n  - path: d\n    feild_messages: c\n"), 0);
    assert_int_equal(c.n_warnings, 1);
    assert_string_equal(c.warnings[0], "cfg.yaml:4:5: unknown key \"feild_messages\" in a dataset; "
                                       "did you mean \"field_messages\"?");
    cfg_free(&c);
}

static void test_alias_key(void **state) {
    eft_config c;
    assert_int_equal(load(&c, BASE "model_revision: v1\n"), 0);
    assert_string_equal(c.revision_of_model.v, "v1");
    assert_int_equal(c.revision_of_model.at.line, 4);
    cfg_free(&c);
}

static void test_document_errors(void **state) {
    load_fails("", "cfg.yaml: the file is empty");
    load_fails("# only a comment\n", "cfg.yaml: the file is empty");
    load_fails("- a\n- b\n", "cfg.yaml:1:1: a config must be a mapping of keys (key: value "
                             "lines), found a list.");
    load_fails("just text\n", "a config must be a mapping of keys (key: value lines), found "
                              "\"just text\"");
    load_fails(BASE "lora_r: 8\nlora_r: 16\n",
               "cfg.yaml:5:1: duplicate key \"lora_r\" (first written at line 4, column 1)");
    load_fails("base_model: m\n  lora_r: 8\n", "cfg.yaml:2:9: YAML syntax error: mapping values "
                                               "are not allowed in this context");
    load_fails("a: [1, 2\n", "cfg.yaml:2:1: YAML syntax error");
    load_fails("a: 1\n---\nb: 2\n", "a second YAML document");
    /* Two spellings of one key (Axolotl's alias model_revision). */
    load_fails(BASE "model_revision: v1\nrevision_of_model: v2\n",
               "cfg.yaml:5:1: revision_of_model: given twice (also as another spelling of the "
               "same key). Keep one.");
    eft_config c;
    eft_err_clear();
    assert_int_equal(cfg_load(&c, "no/such/config.yaml"), -1);
    assert_string_equal(eft_err_msg(), "no/such/config.yaml: no such file. Give the path of a YAML "
                                       "config (Axolotl's format).");
    cfg_free(&c);
    assert_int_equal(cfg_load(&c, "."), -1);
    assert_contains(eft_err_msg(), ". is a folder");
    cfg_free(&c);
}

static void test_datasets(void **state) {
    eft_config c;
    const char *text = "base_model: m\nlearning_rate: 1\ndatasets:\n"
                       "  - path: a.jsonl\n    type:\n      field_instruction: q\n"
                       "      field_output: a\n      format: \"Q: {instruction}\\nA:\"\n"
                       "  - path: b\n    ds_type: parquet\n    data_files: [x.parquet, y.parquet]\n"
                       "    split: train[:10%]\n";
    assert_int_equal(load(&c, text), 0);
    assert_int_equal(c.datasets.n, 2);
    const cfg_dataset *d = &c.datasets.v[0];
    assert_string_equal(d->type.v, "user_defined");
    assert_string_equal(d->custom.field_instruction.v, "q");
    assert_string_equal(d->custom.format.v, "Q: {instruction}\nA:");
    assert_int_equal(d->at.line, 4);
    assert_int_equal(d->at.col, 5);
    d = &c.datasets.v[1];
    assert_string_equal(d->ds_type.v, "parquet");
    assert_int_equal(d->data_files.n, 2);
    assert_string_equal(d->split.v, "train[:10%]");
    assert_false(d->type.set);
    cfg_free(&c);
    load_fails("datasets:\n  - path: a\n    train_on_eos: sometimes\n",
               "cfg.yaml:3:19: datasets[0].train_on_eos: unknown value \"sometimes\"; expected "
               "one of: turn, all, last, none.");
    load_fails("datasets:\n  - path: a\n  - path: b\n    type: sharegpt\n",
               "cfg.yaml:4:11: datasets[1].type: sharegpt is not supported yet by eft");
    load_fails("datasets:\n  - path: a\n    conversation: chatml\n",
               "cfg.yaml:3:5: datasets[0].conversation: not supported yet by eft. Remove it; use "
               "type: chat_template.");
    load_fails("datasets: a.jsonl\n", "cfg.yaml:1:11: datasets: expected a list of datasets");
    load_fails("datasets:\n  - a.jsonl\n", "cfg.yaml:2:5: datasets[0]: expected a mapping");
}

static void test_full_fixture(void **state) {
    char *path = eft_path_join(EFT_SOURCE_DIR, "tests/data_files/configs/lora.yaml");
    eft_config c;
    if (cfg_load(&c, path) || cfg_validate(&c)) fail_msg("%s", eft_err_msg());
    assert_true(c.strict.v);
    assert_string_equal(c.chat_template.v, "gemma4");
    assert_int_equal(c.datasets.n, 2);
    const cfg_dataset *d = &c.datasets.v[0];
    assert_string_equal(d->field_messages.v, "conversations");
    const cfg_map_item *role = cfg_map_find(&d->message_property_mappings, "role");
    assert_string_equal(role->v[0].text, "from");
    const cfg_map_item *asst = cfg_map_find(&d->roles, "assistant");
    assert_true(asst->is_list && asst->n == 2);
    assert_string_equal(asst->v[1].text, "model");
    assert_string_equal(c.datasets.v[1].field.v, "body");
    assert_true(c.sample_packing.v);
    assert_true(c.eval_sample_packing.set && !c.eval_sample_packing.v);
    assert_string_equal(c.adapter.v, "lora");
    assert_int_equal(c.lora_r.v, 8);
    assert_true(c.lora_dropout.v == 0.05);
    assert_false(c.lora_target_modules.single_string);
    assert_true(c.learning_rate.v == 1e-4); /* quoted "1e-4" */
    assert_true(c.num_epochs.v == 2.0);
    assert_string_equal(c.lr_scheduler.v, "cosine_with_min_lr");
    assert_int_equal(c.warmup_steps.v, 10);
    assert_true(c.max_grad_norm.v == 0.5);
    assert_string_equal(c.bf16.v, "true");
    assert_string_equal(c.gradient_checkpointing.v, "offload");
    assert_string_equal(c.loss_normalization.v, "micro_batch");
    assert_int_equal(c.seed.v, 7);
    /* Positions point at the values in the file. */
    assert_string_equal(c.lora_r.at.file, path);
    assert_int_equal(c.lora_r.at.line, 32);
    assert_int_equal(c.lora_r.at.col, 9);
    assert_int_equal(c.n_warnings, 0);
    assert_null(cfg_no_effect_list(&c));
    cfg_free(&c);
    eft_free(path);
}

static void test_fail_at(void **state) {
    cfg_pos at = {"cfg.yaml", 3, 7};
    assert_int_equal(cfg_fail_at(at, "lora_target_modules", "matches no module (%d layers)", 30),
                     -1);
    assert_string_equal(eft_err_msg(),
                        "cfg.yaml:3:7: lora_target_modules: matches no module (30 layers)");
    cfg_fail_at((cfg_pos){"command line", 0, 0}, "--lora-r", "too big");
    assert_string_equal(eft_err_msg(), "command line: --lora-r: too big");
    eft_err_clear();
}

int main(void) {
    eft_log_set_level(EFT_LOG_QUIET);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml11_booleans),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_empty_values_take_defaults),
        cmocka_unit_test(test_strings_and_quoting),
        cmocka_unit_test(test_string_or_list),
        cmocka_unit_test(test_steps_and_choices),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_not_yet_and_no_effect),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_alias_key),
        cmocka_unit_test(test_document_errors),
        cmocka_unit_test(test_datasets),
        cmocka_unit_test(test_full_fixture),
        cmocka_unit_test(test_fail_at),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
