/* test_peft_io_compat.c: PEFT reads the adapters eft writes, and gets eft's loss with them.
 *
 * tools/make_peft_fixtures.py had eft write tests/data_files/peft/<name>/adapter/ (`eft debug
 * init-adapter` for the config.yaml beside it; tiny-e2b-text-eft: text-only layout, every linear
 * layer by exact path, rsLoRA, random B; tiny-26b-a4b-eft: the MoE examples' adapter, experts by
 * target_parameters, router included) and had PEFT load it (tools/check_peft_adapter.py:
 * PeftModel.from_pretrained, every value taken as saved) and record its loss on the golden rows
 * in peft_loss.json. Here:
 *   - eft's loss with that adapter equals PEFT's (relative 1e-5), eft's loss without it equals
 *     the base loss PEFT's run saw, and the two differ by far more than the tolerance, so the
 *     adapter is really applied;
 *   - eft's writer still writes those exact files: loading the folder and saving it again gives
 *     the same bytes, and `eft debug init-adapter` with the same config rebuilds them.
 */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/json.h"
#include "model/g4_config.h"
#include "model/g4_plan.h"
#include "model/g4_weights.h"
#include "peft/lora.h"
#include "peft/peft_io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double run_loss(const char *model, const char *adapter, const char *rows) {
    char *cmd = adapter ? eft_asprintf("debug loss --model %s --adapter %s --input %s", model,
                                       adapter, rows)
                        : eft_asprintf("debug loss --model %s --input %s", model, rows);
    char *out = NULL, *err = NULL;
    if (test_run_eft(cmd, &out, &err)) fail_msg("eft %s: %s", cmd, err);
    const char *l = strstr(out, "\"loss\": ");
    assert_non_null(l);
    double loss = strtod(l + 8, NULL);
    eft_free(cmd), eft_free(out), eft_free(err);
    return loss;
}

static void assert_same_file(const char *d1, const char *d2, const char *name) {
    char *p1 = eft_path_join(d1, name), *p2 = eft_path_join(d2, name);
    size_t n1, n2;
    char *s1 = eft_read_file(p1, &n1), *s2 = eft_read_file(p2, &n2);
    assert_non_null(s1);
    assert_non_null(s2);
    if (n1 != n2 || memcmp(s1, s2, n1))
        fail_msg("%s and %s differ (if eft's adapter files changed on purpose, regenerate the "
                 "fixture with tools/make_peft_fixtures.py)",
                 p1, p2);
    eft_free(s1), eft_free(s2), eft_free(p1), eft_free(p2);
}

/* Loads `adapter` onto the checkpoint's tensor list and saves it again into `out`. */
static void resave(const char *model, const char *adapter, const char *out) {
    char *cfg_path = eft_path_join(model, "config.json");
    g4_config cfg;
    if (g4_config_load(&cfg, cfg_path)) fail_msg("%s", eft_err_msg());
    g4_plan plan;
    g4_tensors ts;
    g4_plan_build(&plan, &cfg);
    g4_tensors_build(&plan, &ts);
    g4_weights w;
    if (g4_weights_load(&w, &plan, &ts, model, false)) fail_msg("%s", eft_err_msg());
    lora_adapter a;
    peft_config pc;
    if (peft_load(adapter, &w, false, &a, &pc)) fail_msg("%s", eft_err_msg());
    if (peft_save(out, &a, &pc)) fail_msg("%s", eft_err_msg());
    lora_detach(&a);
    peft_config_free(&pc);
    g4_weights_free(&w);
    g4_tensors_free(&ts);
    g4_plan_free(&plan);
    g4_config_free(&cfg);
    eft_free(cfg_path);
}

static void check_fixture(const char *fixture) {
    char *dir = eft_path_join(EFT_SOURCE_DIR, fixture);
    char *adapter = eft_path_join(dir, "adapter");
    char *rows = eft_path_join(EFT_SOURCE_DIR, "tests/data_files/golden/rows.jsonl");
    char *json_path = eft_path_join(dir, "peft_loss.json");
    cJSON *ref = eft_json_parse_file(json_path);
    assert_non_null(ref);
    double peft_loss, base_loss;
    int64_t seed;
    const char *preset;
    assert_int_equal(eft_json_num(ref, "loss", &peft_loss, json_path), 0);
    assert_int_equal(eft_json_num(ref, "base_loss", &base_loss, json_path), 0);
    assert_int_equal(eft_json_int(ref, "seed", &seed, json_path), 0);
    assert_int_equal(eft_json_str(ref, "preset", &preset, json_path), 0);
    const cJSON *flags = cJSON_GetObjectItemCaseSensitive(ref, "flags");
    assert_true(cJSON_IsArray(flags));
    bool text_only = false;
    for (const cJSON *f = flags->child; f; f = f->next)
        text_only |= cJSON_IsString(f) && !strcmp(f->valuestring, "--text-only");

    char *tmp = test_tmpdir("peft_compat");
    char *model = eft_path_join(tmp, "model");
    char *cmd = eft_asprintf("init-model --preset %s --out %s --seed %lld%s", preset, model,
                             (long long)seed, text_only ? " --text-only" : "");
    assert_int_equal(test_run_eft(cmd, NULL, NULL), 0);
    eft_free(cmd);

    double loss = run_loss(model, adapter, rows), base = run_loss(model, NULL, rows);
    if (!(fabs(loss - peft_loss) <= 1e-5 * peft_loss))
        fail_msg("eft's loss with its adapter %.9g, PEFT's %.9g", loss, peft_loss);
    if (!(fabs(base - base_loss) <= 1e-5 * base_loss))
        fail_msg("base loss %.9g, PEFT's run saw %.9g", base, base_loss);
    assert_true(fabs(peft_loss - base_loss) > 100 * 1e-5 * peft_loss);

    /* The writer still writes what PEFT read. */
    char *again = eft_path_join(tmp, "resaved");
    resave(model, adapter, again);
    assert_same_file(adapter, again, PEFT_WEIGHTS_NAME);
    assert_same_file(adapter, again, PEFT_CONFIG_NAME);
    char *fresh = eft_path_join(tmp, "fresh");
    cmd = eft_asprintf("debug init-adapter --model %s --config %s/config.yaml --out %s", model, dir,
                       fresh);
    assert_int_equal(test_run_eft(cmd, NULL, NULL), 0);
    eft_free(cmd);
    assert_same_file(adapter, fresh, PEFT_WEIGHTS_NAME);
    assert_same_file(adapter, fresh, PEFT_CONFIG_NAME);

    cJSON_Delete(ref);
    eft_free(fresh), eft_free(again), eft_free(model), eft_free(json_path), eft_free(rows);
    eft_free(adapter), eft_free(dir);
    test_tmpdir_cleanup(tmp);
}

static void test_peft_reads_eft(void **state) {
    check_fixture("tests/data_files/peft/tiny-e2b-text-eft");
}

/* Expert tensors: PEFT finds every ParamWrapper tensor where eft wrote it. */
static void test_peft_reads_eft_experts(void **state) {
    check_fixture("tests/data_files/peft/tiny-26b-a4b-eft");
}

/* The CLI side of a bad adapter: one line naming the file, exit status 1. */
static void test_cli_errors(void **state) {
    char *tmp = test_tmpdir("peft_cli_errors");
    char *cmd = eft_asprintf("init-model --preset tiny-31b --out %s/model --seed 1", tmp);
    assert_int_equal(test_run_eft(cmd, NULL, NULL), 0);
    eft_free(cmd);
    char *err = NULL;
    cmd = eft_asprintf("debug loss --model %s/model --adapter %s/none --input "
                       "%s/tests/data_files/golden/rows.jsonl",
                       tmp, tmp, EFT_SOURCE_DIR);
    assert_int_equal(test_run_eft(cmd, NULL, &err), 1);
    assert_contains(err, "none/adapter_config.json: not found");
    eft_free(err), eft_free(cmd);
    test_tmpdir_cleanup(tmp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peft_reads_eft),
        cmocka_unit_test(test_peft_reads_eft_experts),
        cmocka_unit_test(test_cli_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
