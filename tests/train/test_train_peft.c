/* test_train_peft.c: PEFT loads the adapter `eft train` saves, and gets eft's loss with it.
 *
 * tools/make_train_reference.py had eft train a fresh adapter (tests/data_files/train/
 * eft-trained/peft_loss.json "config": Axolotl's target regex, rsLoRA, rank 2, four updates on
 * rows.jsonl), kept output_dir's adapter_model.safetensors and adapter_config.json in
 * eft-trained/, loaded them with PeftModel.from_pretrained (tools/check_peft_adapter.py: every
 * tensor taken as saved) and recorded PEFT's token-mean loss on eval_rows.jsonl. Here:
 *   - `eft debug loss --adapter` and `eft evaluate` (lora_model_dir, test_datasets) give PEFT's
 *     loss with that adapter (relative 1e-5), the base loss without it, and the two differ by far
 *     more than the tolerance, so the adapter is really applied;
 *   - the same run today still writes that adapter: the same adapter_config.json (but for
 *     base_model_name_or_path, a path) and the same tensor names and shapes. The values are not
 *     compared: they follow eft's initialisation, which may change without breaking PEFT.
 */
#include "tt.h"

#include <stdio.h>

static double loss_of(const char *out) {
    const char *l = strstr(out, "\"loss\": ");
    if (!l) fail_msg("no loss in %s", out);
    return strtod(l + 8, NULL);
}

static double debug_loss(const tt_env *e, const char *adapter) {
    char *cmd = eft_asprintf("debug loss --model %s %s%s --input %s/eval_rows.jsonl", e->model,
                             adapter ? "--adapter " : "", adapter ? adapter : "", TT_FIXTURES);
    char *out = NULL, *err = NULL;
    if (test_run_eft(cmd, &out, &err)) fail_msg("eft %s: %s", cmd, err);
    double loss = loss_of(out);
    eft_free(cmd), eft_free(out), eft_free(err);
    return loss;
}

static void assert_rel(const char *what, double got, double want, double tol) {
    if (!(fabs(got - want) <= tol * fabs(want)))
        fail_msg("%s: eft %.9g, PEFT %.9g (tolerance %g relative)", what, got, want, tol);
}

/* adapter_config.json as JSON, without base_model_name_or_path (owned). */
static cJSON *config_without_base(const char *dir) {
    char *path = eft_path_join(dir, "adapter_config.json");
    cJSON *j = tt_json(path);
    eft_free(path);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "base_model_name_or_path");
    return j;
}

static void test_peft_loads_eft_adapter(void **state) {
    cJSON *ref = tt_json(TT_FIXTURES "/eft-trained/peft_loss.json");
    double peft_loss, base_loss;
    int64_t seed, tokens;
    assert_int_equal(eft_json_num(ref, "loss", &peft_loss, "peft_loss.json"), 0);
    assert_int_equal(eft_json_num(ref, "base_loss", &base_loss, "peft_loss.json"), 0);
    assert_int_equal(eft_json_int(ref, "seed", &seed, "peft_loss.json"), 0);
    assert_int_equal(eft_json_int(ref, "tokens", &tokens, "peft_loss.json"), 0);
    tt_env e;
    tt_env_init(&e, "train_peft", (int)seed);

    const char *adapter = TT_FIXTURES "/eft-trained";
    double loss = debug_loss(&e, adapter), base = debug_loss(&e, NULL);
    assert_rel("debug loss with the adapter", loss, peft_loss, 1e-5);
    assert_rel("debug loss without it", base, base_loss, 1e-5);
    assert_true(fabs(peft_loss - base_loss) > 100 * 1e-5 * peft_loss);

    /* eft evaluate: the token mean over the eval set, with the adapter of lora_model_dir. */
    char *cfg = tt_config(&e, "evaluate",
                          "sequence_len: 64\n"
                          "learning_rate: 0.001\n" /* required, as by Axolotl */
                          "adapter: lora\n"
                          "lora_model_dir: " TT_FIXTURES "/eft-trained\n"
                          "test_datasets:\n  - path: " TT_FIXTURES "/eval_rows.jsonl\n");
    char *cmd = eft_asprintf("evaluate %s", cfg), *out = NULL, *err = NULL;
    if (test_run_eft(cmd, &out, &err)) fail_msg("eft %s: %s", cmd, err);
    cJSON *res = eft_json_parse(out, strlen(out), "eft evaluate's output");
    assert_non_null(res);
    double eval_loss;
    int64_t eval_tokens;
    assert_int_equal(eft_json_num(res, "eval_loss", &eval_loss, "output"), 0);
    assert_int_equal(eft_json_int(res, "eval_tokens", &eval_tokens, "output"), 0);
    assert_rel("evaluate's eval_loss", eval_loss, peft_loss, 1e-5);
    assert_int_equal(eval_tokens, tokens);
    cJSON_Delete(res), eft_free(out), eft_free(err), eft_free(cmd), eft_free(cfg);

    /* Today's eft writes the same files for the same run. */
    eft_buf keys = {0};
    tt_yaml_from_json(&keys, cJSON_GetObjectItemCaseSensitive(ref, "config"));
    cfg = tt_config(&e, "trained", keys.data);
    tt_train_ok(cfg, NULL);
    char *dir = tt_path(&e, "trained");
    cJSON *got = config_without_base(dir), *want = config_without_base(adapter);
    if (!cJSON_Compare(got, want, true)) {
        char *g = cJSON_Print(got), *w = cJSON_Print(want);
        fail_msg("adapter_config.json changed:\n%s\nwas:\n%s", g, w);
    }
    tt_tensors a, b;
    char *pa = eft_path_join(dir, "adapter_model.safetensors");
    tt_tensors_read(&a, pa);
    tt_tensors_read(&b, TT_FIXTURES "/eft-trained/adapter_model.safetensors");
    assert_int_equal(a.n, b.n);
    for (int i = 0; i < a.n; i++) {
        assert_string_equal(a.names[i], b.names[i]);
        assert_int_equal(a.numel[i], b.numel[i]);
    }
    tt_tensors_free(&a), tt_tensors_free(&b);
    cJSON_Delete(got), cJSON_Delete(want), eft_free(pa), eft_free(dir), eft_free(cfg);
    eft_buf_free(&keys);
    cJSON_Delete(ref);
    tt_env_free(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peft_loads_eft_adapter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
