/* test_nf4_load.c: QLoRA end to end: a checkpoint loaded with its linear weights in NF4, trained
 * by `eft train`, and read back by PEFT.
 *   - Loading (nf4_weights_load) quantises exactly the tensors g4_nf4_quantized names, each to
 *     what nf4_quantize makes of the file's tensor, leaves everything else bound as usual and
 *     nothing trainable, and the NF4 bytes held equal the memory plan's NF4 figure (26B-A4B
 *     with and without quantize_moe_experts).
 *   - PEFT reads eft's QLoRA adapter: tools/make_peft_fixtures.py trained
 *     tests/data_files/peft/tiny-31b-qlora-eft/adapter with `eft train` (the config.yaml
 *     template there) and had PEFT load it on the same base loaded in 4-bit by transformers and
 *     bitsandbytes (every value taken as saved); eft's loss with that adapter equals PEFT's, and
 *     the adapter moves the loss by far more than the tolerance.
 *   - `eft train` of that config runs here: it quantises the 41 linear weights, the loss falls,
 *     and the adapter it writes loads.
 *   - The user errors: no double quantisation, 4-bit without an adapter, --load-in-4bit with base
 *     gradients; quantize_moe_experts is accepted. */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/config.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/g4_desc.h"
#include "model/g4_memory.h"
#include "peft/nf4.h"
#include "peft/nf4_load.h"
#include "train/run_config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *fixture = "tests/data_files/peft/tiny-31b-qlora-eft";

static char *make_model(const char *tmp, const char *preset, const char *flags, int seed) {
    char *dir = eft_asprintf("%s/%s-%d", tmp, preset, seed);
    char *cmd =
        eft_asprintf("init-model --preset %s --out %s --seed %d %s", preset, dir, seed, flags);
    assert_int_equal(test_run_eft(cmd, NULL, NULL), 0);
    eft_free(cmd);
    return dir;
}

/* Loading: which tensors, their values, frozen, and the bytes against the memory plan. With
 * experts, the 3-D expert tensors are NF4 too, each quantised whole. */
static void check_load(const char *tmp, const char *preset, bool experts) {
    char *dir = make_model(tmp, preset, "", 5);
    g4_desc d;
    assert_int_equal(g4_desc_load(&d, dir), 0);
    g4_weights w;
    nf4_options o = {true, experts};
    assert_int_equal(nf4_weights_load(&w, &d.plan, &d.ts, dir, &o), 0);
    st_archive *a;
    char *file = eft_path_join(dir, "model.safetensors");
    assert_int_equal(st_open(&a, file), 0);
    int expected = 0, expert_tensors = 0;
    for (int i = 0; i < d.ts.n; i++) {
        const g4_param *p = &w.params[i];
        bool nf4 = g4_nf4_quantized(p->t, experts);
        expected += nf4;
        expert_tensors += nf4 && p->t->group == G4_GROUP_MOE_EXPERTS;
        assert_null(p->grad);
        if (!nf4) {
            assert_true(p->w.dtype != OPS_W_NF4 && !p->owned);
            continue;
        }
        assert_int_equal(p->w.dtype, OPS_W_NF4);
        assert_ptr_equal(p->w.data, p->owned);
        const ops_nf4 *q = p->w.data;
        const st_tensor *st = st_find(a, p->t->name);
        assert_non_null(st);
        ops_nf4 *r = nf4_quantize(st->data, st->dtype, st->numel, true);
        assert_int_equal(q->n, p->t->numel);
        assert_int_equal(q->first, 0);
        assert_true(q->round_bf16 && q->offset == r->offset && q->map == r->map);
        assert_memory_equal(q->codes, r->codes, (size_t)(q->n + 1) / 2);
        assert_memory_equal(q->qabsmax, r->qabsmax, (size_t)ops_nf4_blocks(q->n));
        assert_memory_equal(q->absmax2, r->absmax2, (size_t)ops_nf4_groups(q->n) * 4);
        eft_free(r);
    }
    assert_true(w.embed->w.dtype != OPS_W_NF4);
    int count;
    int64_t bytes = nf4_weights_bytes(&w, &count);
    assert_int_equal(count, expected);
    assert_true(count > 0);
    if (experts) assert_int_equal(expert_tensors, 2 * d.plan.L); /* every layer is MoE */
    g4_run_shape s;
    g4_run_shape_default(&s);
    s.weights = G4_WEIGHTS_NF4;
    s.quantize_moe_experts = experts;
    g4_memory m;
    assert_int_equal(g4_memory_plan(&d.plan, &d.ts, &s, &m), 0);
    assert_int_equal(bytes, m.weights_nf4);
    st_close(a);
    g4_weights_free(&w);
    g4_desc_free(&d);
    eft_free(file);
    eft_free(dir);
}

static void test_load(void **state) {
    char *tmp = test_tmpdir("nf4_load");
    check_load(tmp, "tiny-e2b", false);
    check_load(tmp, "tiny-31b", false);
    check_load(tmp, "demo-31b", false);
    check_load(tmp, "tiny-26b-a4b", false);
    check_load(tmp, "tiny-26b-a4b", true);
    test_tmpdir_cleanup(tmp);
}

static double loss_of(const char *out) {
    const char *l = strstr(out, "\"loss\": ");
    assert_non_null(l);
    return strtod(l + 8, NULL);
}

static double debug_loss(const char *model, const char *adapter) {
    char *with = adapter ? eft_asprintf("--adapter %s", adapter) : eft_strdup("");
    char *cmd = eft_asprintf("debug loss --model %s %s --input %s/tests/data_files/golden/"
                             "rows.jsonl --load-in-4bit --bnb-4bit-compute-dtype float32",
                             model, with, EFT_SOURCE_DIR);
    char *out = NULL, *err = NULL;
    if (test_run_eft(cmd, &out, &err)) fail_msg("eft %s: %s", cmd, err);
    assert_contains(out, "\"nf4_tensors\": 41,");
    double loss = loss_of(out);
    eft_free(cmd), eft_free(with), eft_free(out), eft_free(err);
    return loss;
}

static cJSON *peft_result(void) {
    char *path = eft_asprintf("%s/%s/peft_loss.json", EFT_SOURCE_DIR, fixture);
    size_t n;
    char *text = eft_read_file(path, &n);
    assert_non_null(text);
    cJSON *j = eft_json_parse(text, n, path);
    assert_non_null(j);
    eft_free(text), eft_free(path);
    return j;
}

/* The fixture's base: the preset, flags and seed PEFT's run used. */
static char *fixture_model(const char *tmp, const cJSON *j) {
    const cJSON *flags = cJSON_GetObjectItemCaseSensitive(j, "flags");
    assert_int_equal(cJSON_GetArraySize(flags), 2);
    char *f = eft_asprintf("%s %s", cJSON_GetArrayItem(flags, 0)->valuestring,
                           cJSON_GetArrayItem(flags, 1)->valuestring);
    char *dir = make_model(tmp, cJSON_GetObjectItemCaseSensitive(j, "preset")->valuestring, f,
                           cJSON_GetObjectItemCaseSensitive(j, "seed")->valueint);
    eft_free(f);
    return dir;
}

static void test_peft_reads_eft_qlora(void **state) {
    cJSON *j = peft_result();
    char *tmp = test_tmpdir("nf4_peft");
    char *model = fixture_model(tmp, j);
    char *adapter = eft_asprintf("%s/%s/adapter", EFT_SOURCE_DIR, fixture);
    double peft = cJSON_GetObjectItemCaseSensitive(j, "loss")->valuedouble;
    double base = cJSON_GetObjectItemCaseSensitive(j, "base_loss")->valuedouble;
    double with = debug_loss(model, adapter), without = debug_loss(model, NULL);
    assert_close(with, peft, 1e-5);
    assert_close(without, base, 1e-5);
    assert_true(fabs(peft - base) > 100 * 1e-5 * fabs(base));
    eft_free(adapter), eft_free(model);
    test_tmpdir_cleanup(tmp);
    cJSON_Delete(j);
}

/* The config template with this machine's paths. */
static char *fill_template(const char *model, const char *out) {
    char *path = eft_asprintf("%s/%s/config.yaml", EFT_SOURCE_DIR, fixture);
    char *text = eft_read_file(path, NULL);
    assert_non_null(text);
    char *examples = eft_path_join(EFT_SOURCE_DIR, "examples");
    const char *keys[3] = {"@MODEL@", "@OUT@", "@EXAMPLES@"};
    const char *vals[3] = {model, out, examples};
    for (int k = 0; k < 3; k++) {
        char *at;
        while ((at = strstr(text, keys[k]))) {
            *at = 0;
            char *next = eft_asprintf("%s%s%s", text, vals[k], at + strlen(keys[k]));
            eft_free(text);
            text = next;
        }
    }
    eft_free(examples), eft_free(path);
    return text;
}

static void test_train(void **state) {
    cJSON *j = peft_result();
    char *tmp = test_tmpdir("nf4_train");
    char *model = fixture_model(tmp, j);
    char *config = eft_asprintf("%s/config.yaml", tmp), *text = fill_template(model, tmp);
    test_write_file(config, text);
    char *cmd = eft_asprintf("train %s", config), *out = NULL, *err = NULL;
    setenv("EFT_NO_TTY", "1", 1);
    if (test_run_eft(cmd, &out, &err)) fail_msg("eft %s: %s", cmd, err);
    assert_contains(err, "load_in_4bit: 41 linear weights quantised to NF4");
    assert_contains(err, "dequantised to bf16");

    /* The loss falls: the first update's against the mean of the last four. */
    char *metrics = eft_asprintf("%s/run/metrics.jsonl", tmp);
    char *log = eft_read_file(metrics, NULL);
    assert_non_null(log);
    double first = NAN, last[4] = {NAN, NAN, NAN, NAN};
    int n = 0;
    for (const char *l = strstr(log, "\"loss\": "); l; l = strstr(l + 1, "\"loss\": ")) {
        double v = strtod(l + 8, NULL);
        assert_true(isfinite(v));
        if (n++ == 0) first = v;
        last[(n - 1) % 4] = v;
    }
    assert_int_equal(n, 16);
    double tail = (last[0] + last[1] + last[2] + last[3]) / 4;
    if (!(tail < first - 0.03)) fail_msg("QLoRA loss did not fall: %g then %g", first, tail);

    /* The adapter it wrote loads, and changes the model. */
    char *adapter = eft_asprintf("%s/run", tmp);
    double with = debug_loss(model, adapter), without = debug_loss(model, NULL);
    assert_true(isfinite(with) && fabs(with - without) > 1e-4);
    eft_free(adapter), eft_free(metrics), eft_free(log), eft_free(cmd), eft_free(out);
    eft_free(err), eft_free(config), eft_free(text), eft_free(model);
    test_tmpdir_cleanup(tmp);
    cJSON_Delete(j);
}

static void test_errors(void **state) {
    eft_config c;
    g4_desc d;
    assert_int_equal(g4_desc_load(&d, EFT_SOURCE_DIR "/tests/data_files/gemma4/e2b"), 0);
    const char *base = "base_model: x\ndatasets:\n  - path: d.jsonl\nadapter: qlora\n"
                       "load_in_4bit: true\nlora_r: 8\nlearning_rate: 1e-4\n";
    char *text = eft_asprintf("%sbnb_config_kwargs:\n  bnb_4bit_use_double_quant: false\n", base);
    assert_int_equal(cfg_load_string(&c, text, "q.yaml"), 0);
    assert_int_equal(trn_check_buildable(&c, &d.plan), -1);
    assert_contains(eft_err_msg(), "q.yaml:9:30: bnb_config_kwargs.bnb_4bit_use_double_quant");
    assert_contains(eft_err_msg(), "double quantisation");
    cfg_free(&c);
    eft_free(text);
    assert_int_equal(cfg_load_string(&c, base, "q.yaml"), 0);
    assert_int_equal(trn_check_buildable(&c, &d.plan), 0);
    cfg_free(&c);
    /* NF4 experts are built. */
    text = eft_asprintf("%slora_alpha: 16\nquantize_moe_experts: true\n", base);
    assert_int_equal(cfg_load_string(&c, text, "q.yaml"), 0);
    assert_int_equal(cfg_validate(&c), 0);
    assert_int_equal(trn_check_buildable(&c, &d.plan), 0);
    cfg_free(&c);
    eft_free(text);
    /* Full fine-tuning of a 4-bit base (no adapter) is refused by the config checks. */
    assert_int_equal(cfg_load_string(&c,
                                     "base_model: x\ndatasets:\n  - path: d.jsonl\n"
                                     "load_in_4bit: true\nlearning_rate: 1e-4\n",
                                     "f.yaml"),
                     0);
    assert_int_equal(cfg_validate(&c), -1);
    assert_contains(eft_err_msg(), "f.yaml:4:15: load_in_4bit: a 4-bit base cannot be");
    cfg_free(&c);
    g4_desc_free(&d);

    char *out = NULL, *err = NULL;
    char *cmd = eft_asprintf("debug loss --model %s/tests/data_files/gemma4/e2b --input "
                             "%s/tests/data_files/golden/rows.jsonl --load-in-4bit --dump-grads "
                             "g.safetensors",
                             EFT_SOURCE_DIR, EFT_SOURCE_DIR);
    assert_int_equal(test_run_eft(cmd, &out, &err), 1);
    assert_contains(err, "--dump-grads needs --adapter DIR");
    eft_free(cmd);
    eft_free(out);
    eft_free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_peft_reads_eft_qlora),
        cmocka_unit_test(test_train),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
