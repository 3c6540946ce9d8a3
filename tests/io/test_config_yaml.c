/* test_config_yaml.c: the YAML layer under the config: PyYAML's scalar resolution, positions,
 * aliases and merge keys, and the errors it reports. */
#include "support/test.h"

#include "base/err.h"
#include "io/yaml_doc.h"

#include <math.h>
#include <string.h>

static ydoc_type resolve_text(const char *yaml, bool *b, int64_t *i, double *f) {
    ydoc d;
    char *doc = eft_asprintf("v: %s\n", yaml);
    assert_int_equal(ydoc_parse(&d, doc, strlen(doc), "t.yaml"), 0);
    const ydoc_node *v = ydoc_map_get(d.root, "v", NULL);
    assert_non_null(v);
    ydoc_type t = ydoc_resolve(v, b, i, f);
    ydoc_free(&d);
    eft_free(doc);
    return t;
}

/* Each row was checked against PyYAML 6 (yaml.safe_load), except the last: an integer beyond
 * int64 (a Python int) is kept as a float. */
static void test_resolution_matches_pyyaml(void **state) {
    static const struct {
        const char *text;
        ydoc_type t;
        double v;
    } cases[] = {
        {"", YDOC_NULL, 0},
        {"~", YDOC_NULL, 0},
        {"null", YDOC_NULL, 0},
        {"Null", YDOC_NULL, 0},
        {"NULL", YDOC_NULL, 0},
        {"nULL", YDOC_STR, 0},
        {"yes", YDOC_BOOL, 1},
        {"Off", YDOC_BOOL, 0},
        {"TRUE", YDOC_BOOL, 1},
        {"y", YDOC_STR, 0},
        {"n", YDOC_STR, 0},
        {"tRUE", YDOC_STR, 0},
        {"'yes'", YDOC_STR, 0},
        {"\"1\"", YDOC_STR, 0},
        {"16", YDOC_INT, 16},
        {"-3", YDOC_INT, -3},
        {"+7", YDOC_INT, 7},
        {"0", YDOC_INT, 0},
        {"017", YDOC_INT, 15},
        {"0x1f", YDOC_INT, 31},
        {"0b101", YDOC_INT, 5},
        {"1_000", YDOC_INT, 1000},
        {"1:30", YDOC_INT, 90},
        {"09", YDOC_STR, 0},
        {"0o17", YDOC_STR, 0},
        {"2e-4", YDOC_STR, 0},
        {"1e3", YDOC_STR, 0},
        {"1.0e4", YDOC_STR, 0},
        {"1.0e+4", YDOC_FLOAT, 1e4},
        {"2.0E-4", YDOC_FLOAT, 2e-4},
        {".5", YDOC_FLOAT, 0.5},
        {"+.5", YDOC_STR, 0},
        {"1.", YDOC_FLOAT, 1},
        {"0.0002", YDOC_FLOAT, 2e-4},
        {"1_0.5", YDOC_FLOAT, 10.5},
        {"1:30.5", YDOC_FLOAT, 90.5},
        {"-.inf", YDOC_FLOAT, -INFINITY},
        {".Inf", YDOC_FLOAT, INFINITY},
        {".inF", YDOC_STR, 0},
        {"!!str 16", YDOC_STR, 0},
        {"!!float 3", YDOC_FLOAT, 3},
        {"!!int \"12\"", YDOC_INT, 12},
        {"| \n  16", YDOC_STR, 0},
        {"99999999999999999999", YDOC_FLOAT, 1e20},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        bool b = false;
        int64_t i = 0;
        double f = 0;
        ydoc_type t = resolve_text(cases[k].text, &b, &i, &f);
        if (t != cases[k].t)
            fail_msg("%s: resolved as type %d, want %d", cases[k].text, t, cases[k].t);
        double got = t == YDOC_BOOL ? b : t == YDOC_INT ? (double)i : t == YDOC_FLOAT ? f : 0;
        if (got != cases[k].v) fail_msg("%s: value %g, want %g", cases[k].text, got, cases[k].v);
    }
    bool b;
    double f;
    assert_int_equal(resolve_text(".NaN", &b, NULL, &f), YDOC_FLOAT);
    assert_true(isnan(f));
}

static void test_positions_aliases_merge(void **state) {
    const char *text = "base: &b\n  lr: 0.1\n  r: 8\n"
                       "run:\n  <<: *b\n  r: 16\n"
                       "list: [&x one, *x]\n";
    ydoc d;
    assert_int_equal(ydoc_parse(&d, text, strlen(text), "t.yaml"), 0);
    const ydoc_node *key, *run = ydoc_map_get(d.root, "run", &key);
    assert_int_equal(key->line, 4);
    assert_int_equal(key->col, 1);
    assert_int_equal(run->n, 2); /* r (explicit) and lr (merged); the explicit r wins */
    assert_string_equal(ydoc_map_get(run, "r", NULL)->text, "16");
    const ydoc_node *lr = ydoc_map_get(run, "lr", NULL);
    assert_string_equal(lr->text, "0.1");
    assert_int_equal(lr->line, 2); /* a copy keeps the place it was written */
    assert_int_equal(lr->col, 7);
    const ydoc_node *list = ydoc_map_get(d.root, "list", NULL);
    assert_int_equal(list->n, 2);
    assert_string_equal(list->items[1]->text, "one");
    ydoc_free(&d);

    const char *bad[][2] = {
        {"a: *nowhere\n", "t.yaml:1:4: alias *nowhere names no anchor"},
        {"a: &s [1, *s]\n", "t.yaml:1:11: an alias inside the value it refers to"},
        {"a: 1\na: 2\n", "t.yaml:2:1: duplicate key \"a\" (first written at line 1, column 1)"},
        {"? [a]\n: 1\n", "t.yaml:1:3: a mapping key must be a plain value"},
        {"a:\n  <<: 5\n", "a merge key (<<) needs a mapping"},
        {"a: b: c\n", "t.yaml:1:5: YAML syntax error: mapping values are not allowed"},
        {"a: 1\n---\nb: 2\n", "t.yaml:2:1: a second YAML document"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        eft_err_clear();
        if (ydoc_parse(&d, bad[k][0], strlen(bad[k][0]), "t.yaml") == 0)
            fail_msg("parsed: %s", bad[k][0]);
        assert_null(d.root);
        assert_contains(eft_err_msg(), bad[k][1]);
    }
    /* Deep nesting is refused, not a stack overflow. */
    char deep[600];
    memset(deep, '[', 300);
    memset(deep + 300, ']', 300);
    assert_int_equal(ydoc_parse(&d, deep, sizeof deep, "t.yaml"), -1);
    assert_contains(eft_err_msg(), "nested too deeply");
    /* Aliases of aliases cannot blow up memory ("billion laughs"). */
    const char *laughs = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
                         "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                         "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                         "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                         "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    assert_int_equal(ydoc_parse(&d, laughs, strlen(laughs), "t.yaml"), -1);
    assert_contains(eft_err_msg(), "t.yaml:6:");
    assert_contains(eft_err_msg(), "aliases expand to more than a million values");
    /* Empty documents are not errors at this level. */
    assert_int_equal(ydoc_parse(&d, "# nothing\n", 10, "t.yaml"), 0);
    assert_null(d.root);
    eft_err_clear();
}

static void test_describe(void **state) {
    ydoc d;
    const char *text = "a: yes\nb: 1.5\nc: text\nd: [1]\ne: {}\nf:\n";
    assert_int_equal(ydoc_parse(&d, text, strlen(text), "t.yaml"), 0);
    const char *want[] = {"yes (a boolean)", "1.5 (a number)",   "\"text\"",
                          "a list",          "an empty mapping", "nothing (null)"};
    for (int i = 0; i < 6; i++) {
        char *s = ydoc_describe(d.root->items[2 * i + 1]);
        assert_string_equal(s, want[i]);
        eft_free(s);
    }
    ydoc_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolution_matches_pyyaml),
        cmocka_unit_test(test_positions_aliases_merge),
        cmocka_unit_test(test_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
