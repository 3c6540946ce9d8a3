/* test_config_print.c: cfg_print writes the effective config as YAML that reads back to the same
 * values (a fixed point after one round), with the origin of each value. */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *print(const eft_config *c) {
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    assert_non_null(f);
    cfg_print(f, c);
    fclose(f);
    char *owned = eft_strdup(text);
    free(text);
    return owned;
}

/* The text without comments (the origins and the header differ between rounds). */
static char *values_only(const char *text) {
    char *out = eft_malloc(strlen(text) + 1), *w = out;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *hash = NULL;
        for (const char *q = p; q < p + len; q++)
            if (q[0] == ' ' && q[1] == '#') hash = q;
        if (p[0] != '#') {
            size_t keep = hash ? (size_t)(hash - p) : len;
            while (keep && p[keep - 1] == ' ') keep--;
            memcpy(w, p, keep);
            w += keep;
            *w++ = '\n';
        }
        p += len + (nl != NULL);
    }
    *w = 0;
    return out;
}

static void round_trip(const char *path, const char *override_key, const char *override_value) {
    eft_config a, b;
    eft_err_clear();
    if (cfg_load(&a, path)) fail_msg("%s", eft_err_msg());
    if (override_key) assert_int_equal(cfg_apply_override(&a, override_key, override_value), 0);
    char *one = print(&a);
    if (cfg_load_string(&b, one, "printed.yaml")) fail_msg("%s\n%s", eft_err_msg(), one);
    assert_int_equal(b.n_warnings, 0);
    char *two = print(&b);
    char *v1 = values_only(one), *v2 = values_only(two);
    assert_string_equal(v1, v2);
    /* Spot checks across the round. */
    assert_true(a.learning_rate.v == b.learning_rate.v);
    assert_int_equal(a.datasets.n, b.datasets.n);
    assert_int_equal(a.lora_target_modules.single_string, b.lora_target_modules.single_string);
    if (a.lora_target_modules.n)
        assert_string_equal(a.lora_target_modules.v[0], b.lora_target_modules.v[0]);
    assert_string_equal(a.bf16.v, b.bf16.v);
    eft_free(v1);
    eft_free(v2);
    eft_free(one);
    eft_free(two);
    cfg_free(&a);
    cfg_free(&b);
}

static void test_round_trip_fixture(void **state) {
    char *path = eft_path_join(EFT_SOURCE_DIR, "tests/data_files/configs/lora.yaml");
    round_trip(path, "micro-batch-size", "3");
    eft_config c;
    assert_int_equal(cfg_load(&c, path), 0);
    assert_int_equal(cfg_apply_override(&c, "seed", "9"), 0);
    char *text = print(&c);
    assert_contains(text, "\nlora_r: 8  # line 32\n");
    assert_contains(text, "\nseed: 9  # command line\n");
    assert_contains(text, "\nadam_beta2: 0.999  # default\n");
    assert_contains(text, "\nlora_target_modules: [\"q_proj\", \"v_proj\"]  # line 36\n");
    assert_contains(text, "\n  - path: \"data/train.jsonl\"  # line 9\n");
    assert_contains(text, "\n    message_property_mappings: {\"role\": \"from\", \"content\": "
                          "\"value\"}  # line 13\n");
    assert_contains(text, "\nlr_scheduler_kwargs: {\"min_lr_rate\": 0.1}  # line 45\n");
    eft_free(text);
    cfg_free(&c);
    eft_free(path);
}

static void test_round_trip_examples(void **state) {
    const char *names[] = {"gemma4/31b-qlora.yaml", "gemma4/26b-a4b-moe-qlora.yaml",
                           "gemma4-unified/12b-text-lora.yaml"};
    for (size_t i = 0; i < 3; i++) {
        char *rel = eft_asprintf("data/axolotl-examples/%s", names[i]);
        char *path = test_shared_or_skip(rel);
        round_trip(path, NULL, NULL);
        eft_free(path);
        eft_free(rel);
    }
}

static void test_custom_type(void **state) {
    eft_config a;
    const char *text = "base_model: m\nlearning_rate: 1\ndatasets:\n  - path: a\n    type:\n"
                       "      field_instruction: q\n      format: \"Q: {instruction}\\n\"\n";
    assert_int_equal(cfg_load_string(&a, text, "c.yaml"), 0);
    char *out = print(&a);
    assert_contains(out, "\n  - path: \"a\"  # line 4\n    type:\n      field_instruction: \"q\"  "
                         "# line 6\n      format: \"Q: {instruction}\\n\"  # line 7\n");
    eft_config b;
    if (cfg_load_string(&b, out, "printed.yaml")) fail_msg("%s\n%s", eft_err_msg(), out);
    assert_string_equal(b.datasets.v[0].custom.format.v, "Q: {instruction}\n");
    cfg_free(&b);
    cfg_free(&a);
    eft_free(out);
}

int main(void) {
    eft_log_set_level(EFT_LOG_QUIET);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_fixture),
        cmocka_unit_test(test_round_trip_examples),
        cmocka_unit_test(test_custom_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
