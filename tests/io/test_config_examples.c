/* test_config_examples.c: Axolotl's seven Gemma 4 example configs (../shared/data/
 * axolotl-examples): the four text configs load and validate with the expected typed values, the
 * vision and NVFP4 ones fail naming the key eft does not support yet, and `eft config-schema`
 * lists every key they use. Skipped where ../shared is absent. */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/config.h"
#include "io/yaml_doc.h"

#include <string.h>

#define REGEX                                                                                      \
    "model.language_model.layers.[\\d]+.(_checkpoint_wrapped_module.)?(mlp|self_attn)."            \
    "(up|down|gate|q|k|v|o)_proj"

static const char *all_examples[] = {
    "gemma4/31b-qlora.yaml",
    "gemma4/26b-a4b-moe-qlora.yaml",
    "gemma4/26b-a4b-moe-bnb-lora.yaml",
    "gemma4-unified/12b-text-lora.yaml",
    "gemma4/e2b-vision-lora.yaml",
    "gemma4-unified/12b-vision-lora.yaml",
    "gemma4/26b-a4b-moe-nvfp4-lora.yaml",
};

static char *example(const char *name) {
    char *rel = eft_asprintf("data/axolotl-examples/%s", name);
    char *path = test_shared_or_skip(rel);
    eft_free(rel);
    return path;
}

/* Loads and validates, failing the test with the message if either fails. */
static void load_ok(eft_config *c, const char *path) {
    eft_err_clear();
    if (cfg_load(c, path) || cfg_validate(c)) fail_msg("%s", eft_err_msg());
    assert_int_equal(c->n_warnings, 0); /* no key of a real Axolotl config is unknown */
}

/* The 1-based line of the first line of the file starting with `prefix`. */
static int line_of(const char *path, const char *prefix) {
    char *text = eft_read_file(path, NULL);
    int line = 1;
    for (const char *p = text; *p;) {
        if (!strncmp(p, prefix, strlen(prefix))) break;
        const char *nl = strchr(p, '\n');
        if (!nl) break;
        p = nl + 1;
        line++;
    }
    eft_free(text);
    return line;
}

static void check_common(const eft_config *c) {
    assert_int_equal(c->lora_r.v, 16);
    assert_int_equal(c->lora_alpha.v, 32);
    assert_true(c->lora_dropout.set && c->lora_dropout.v == 0);
    assert_true(c->learning_rate.v == 0.0002);
    assert_true(c->lora_target_modules.single_string);
    assert_string_equal(c->lora_target_modules.v[0], REGEX);
    assert_int_equal(c->eot_tokens.n, 1);
    assert_string_equal(c->eot_tokens.v[0], "<turn|>");
    assert_string_equal(c->bf16.v, "auto");
    assert_true(c->bf16.set);
    assert_string_equal(c->optimizer.v, "adamw_torch_8bit");
    assert_string_equal(c->lr_scheduler.v, "cosine");
    assert_string_equal(c->gradient_checkpointing.v, "true");
    assert_int_equal(c->gradient_accumulation_steps.v, 4);
    assert_int_equal(c->micro_batch_size.v, 1);
    assert_true(c->num_epochs.v == 1.0);
    assert_true(c->warmup_ratio.v == 0.1 && !c->warmup_steps.set);
    assert_true(c->weight_decay.set && c->weight_decay.v == 0);
    assert_true(c->val_set_size.v == 0.05);
    assert_int_equal(c->evals_per_epoch.v, 4);
    assert_int_equal(c->saves_per_epoch.v, 1);
    assert_true(c->sample_packing.v);
    assert_false(c->special_tokens.set); /* written but empty */
    assert_int_equal(c->datasets.n, 1);
    const cfg_dataset *d = &c->datasets.v[0];
    assert_string_equal(d->path.v, "mlabonne/FineTome-100k");
    assert_string_equal(d->type.v, "chat_template");
    assert_string_equal(d->split.v, "train[:10%]");
    assert_string_equal(d->field_messages.v, "conversations");
    assert_int_equal(d->message_property_mappings.n, 2);
    assert_string_equal(d->message_property_mappings.items[0].key, "role");
    assert_string_equal(d->message_property_mappings.items[0].v[0].text, "from");
    assert_string_equal(d->message_property_mappings.items[1].key, "content");
    assert_string_equal(d->message_property_mappings.items[1].v[0].text, "value");
    /* Defaults of what the examples leave out. */
    assert_false(d->roles_to_train.set);
    assert_string_equal(d->train_on_eos.v, "turn");
    assert_true(c->max_grad_norm.v == 1.0 && !c->max_grad_norm.set);
    assert_int_equal(c->seed.v, 42);
    assert_int_equal(c->save_total_limit.v, 4);
}

static void no_effect_is(const eft_config *c, const char *want) {
    char *list = cfg_no_effect_list(c);
    assert_non_null(list);
    assert_string_equal(list, want);
    eft_free(list);
}

static void test_31b_qlora(void **state) {
    char *path = example("gemma4/31b-qlora.yaml");
    eft_config c;
    load_ok(&c, path);
    check_common(&c);
    assert_string_equal(c.base_model.v, "google/gemma-4-31B");
    assert_string_equal(c.adapter.v, "qlora");
    assert_true(c.load_in_4bit.v);
    assert_false(c.quantize_moe_experts.v);
    bool dq = false;
    assert_int_equal(cfg_map_bool(&c.bnb_config_kwargs, "bnb_4bit_use_double_quant", &dq, "bnb"),
                     0);
    assert_true(dq);
    assert_string_equal(c.activation_offloading.v, "true");
    assert_string_equal(c.chat_template.v, "gemma4");
    assert_int_equal(c.sequence_len.v, 2048);
    assert_int_equal(c.logging_steps.v, 1);
    assert_string_equal(c.output_dir.v, "./outputs/gemma4-31b-qlora");
    assert_false(c.strict.v);
    assert_int_equal(c.lora_r.at.line, line_of(path, "lora_r:"));
    assert_int_equal(c.lora_r.at.col, 9);
    no_effect_is(&c, "plugins, liger_layer_norm, liger_rope, liger_rms_norm, liger_glu_activation, "
                     "liger_rms_norm_gated, wandb_project, wandb_entity, wandb_watch, wandb_name, "
                     "wandb_log_model, tf32, gemma4_hybrid_attn_impl, attn_implementation");
    cfg_free(&c);
    eft_free(path);
}

static void test_moe_qlora(void **state) {
    char *path = example("gemma4/26b-a4b-moe-qlora.yaml");
    eft_config c;
    load_ok(&c, path);
    check_common(&c);
    assert_string_equal(c.base_model.v, "google/gemma-4-26B-A4B");
    assert_true(c.load_in_4bit.v && c.quantize_moe_experts.v);
    assert_false(c.lora_target_parameters.single_string);
    assert_int_equal(c.lora_target_parameters.n, 2);
    assert_string_equal(c.lora_target_parameters.v[0], "experts.gate_up_proj");
    assert_string_equal(c.lora_target_parameters.v[1], "experts.down_proj");
    no_effect_is(&c, "plugins, use_kernels, use_scattermoe, experts_implementation, torch_compile, "
                     "liger_layer_norm, liger_rope, liger_rms_norm, liger_glu_activation, "
                     "liger_rms_norm_gated, ddp_find_unused_parameters, lora_mlp_kernel, "
                     "lora_qkv_kernel, lora_o_kernel, fused_attn_kernel, wandb_project, "
                     "wandb_entity, wandb_watch, wandb_name, wandb_log_model, tf32, "
                     "attn_implementation, gemma4_hybrid_attn_impl");
    cfg_free(&c);
    eft_free(path);
}

static void test_moe_bnb_lora(void **state) {
    char *path = example("gemma4/26b-a4b-moe-bnb-lora.yaml");
    eft_config c;
    load_ok(&c, path);
    check_common(&c);
    assert_int_equal(c.sequence_len.v, 4096);
    assert_string_equal(c.adapter.v, "qlora");
    assert_int_equal(c.lora_target_parameters.n, 2);
    assert_false(c.logging_steps.set); /* derived by the trainer */
    cfg_free(&c);
    eft_free(path);
}

static void test_12b_text_lora(void **state) {
    char *path = example("gemma4-unified/12b-text-lora.yaml");
    eft_config c;
    load_ok(&c, path);
    check_common(&c);
    assert_string_equal(c.base_model.v, "google/gemma-4-12B-it");
    assert_string_equal(c.adapter.v, "lora");
    assert_false(c.load_in_4bit.v);
    assert_string_equal(c.chat_template.v, "gemma4_unified");
    assert_string_equal(c.activation_offloading.v, "false");
    no_effect_is(&c, "plugins, liger_rms_norm, liger_glu_activation, liger_layer_norm, "
                     "wandb_project, wandb_entity, wandb_watch, wandb_name, wandb_log_model, tf32, "
                     "gemma4_hybrid_attn_impl, attn_implementation");
    cfg_free(&c);
    eft_free(path);
}

static void fails_naming(const char *name, const char *key, const char *also) {
    char *path = example(name);
    eft_config c;
    eft_err_clear();
    assert_int_equal(cfg_load(&c, path), -1);
    char *where =
        eft_asprintf("%s:%d:1: %s: not supported yet by eft.", path, line_of(path, key), key);
    assert_contains(eft_err_msg(), where);
    if (also) assert_contains(eft_err_msg(), also);
    eft_free(where);
    cfg_free(&c);
    eft_free(path);
}

static void test_vision_and_nvfp4_fail(void **state) {
    fails_naming("gemma4/e2b-vision-lora.yaml", "processor_type", "Also: skip_prepare_dataset");
    fails_naming("gemma4-unified/12b-vision-lora.yaml", "processor_type",
                 "Also: skip_prepare_dataset");
    fails_naming("gemma4/26b-a4b-moe-nvfp4-lora.yaml", "dsv4_fp4_grouped_mode",
                 "NVFP4 checkpoints are not supported yet");
}

/* Every key the examples use (top level and in datasets) is listed by `eft config-schema`. */
static void test_schema_lists_example_keys(void **state) {
    char *first = example(all_examples[0]);
    eft_free(first);
    char *out = NULL;
    assert_int_equal(test_run_eft("config-schema", &out, NULL), 0);
    assert_contains(out, "Datasets and prompt formats");
    int checked = 0;
    for (size_t i = 0; i < EFT_ARRAY_LEN(all_examples); i++) {
        char *path = example(all_examples[i]);
        ydoc d;
        assert_int_equal(ydoc_parse_file(&d, path), 0);
        for (int k = 0; k < d.root->n; k++) {
            const ydoc_node *key = d.root->items[2 * k], *val = d.root->items[2 * k + 1];
            char *line = eft_asprintf("\n  %s ", key->text);
            assert_contains(out, line);
            eft_free(line);
            checked++;
            if (strcmp(key->text, "datasets")) continue;
            for (int j = 0; j < val->n; j++)
                for (int m = 0; m < val->items[j]->n; m++) {
                    line = eft_asprintf("\n  %s ", val->items[j]->items[2 * m]->text);
                    assert_contains(out, line);
                    eft_free(line);
                    checked++;
                }
        }
        ydoc_free(&d);
        eft_free(path);
    }
    assert_true(checked > 250);
    eft_free(out);
    /* The JSON form has the same keys with their status. */
    assert_int_equal(test_run_eft("config-schema --json", &out, NULL), 0);
    assert_contains(out, "\"name\":\t\"dsv4_fp4_grouped_mode\",");
    assert_contains(out, "\"status\":\t\"not_yet\"");
    eft_free(out);
    char *err = NULL;
    assert_int_equal(test_run_eft("config-schema --yaml", NULL, &err), 1);
    assert_contains(err, "eft: error: config-schema: unknown argument \"--yaml\"");
    eft_free(err);
}

int main(void) {
    eft_log_set_level(EFT_LOG_QUIET);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_31b_qlora),
        cmocka_unit_test(test_moe_qlora),
        cmocka_unit_test(test_moe_bnb_lora),
        cmocka_unit_test(test_12b_text_lora),
        cmocka_unit_test(test_vision_and_nvfp4_fail),
        cmocka_unit_test(test_schema_lists_example_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
