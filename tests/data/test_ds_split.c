/* test_ds_split.c: Hugging Face split specs: slices, percent rounding (Python's round, halves
 * to even, as datasets' ReadInstruction uses), negative boundaries, clamping, "+" parts, the
 * pct1_dropremainder rounding, and the specs datasets refuses. */
#include "support/test.h"

#include "base/err.h"
#include "data/ds_split.h"

#include <string.h>

/* The range spec's first part selects out of n rows. */
static void range(const char *spec, int64_t n, int64_t from, int64_t to) {
    ds_split_spec s;
    if (ds_split_parse(spec, &s)) fail_msg("%s: %s", spec, eft_err_msg());
    int64_t f, t;
    assert_int_equal(ds_split_range(&s.parts[0], n, &f, &t), 0);
    if (f != from || t != to)
        fail_msg("%s on %lld rows: [%lld, %lld), expected [%lld, %lld)", spec, (long long)n,
                 (long long)f, (long long)t, (long long)from, (long long)to);
    ds_split_free(&s);
}

static void test_slices(void **state) {
    range("train", 37, 0, 37);
    range("train[:100]", 50, 0, 50); /* clamped */
    range("train[:100]", 500, 0, 100);
    range("train[10:20]", 500, 10, 20);
    range("train[-3:]", 10, 7, 10);
    range("train[:-3]", 10, 0, 7);
    range("train[-30:]", 10, 0, 10);
    range("train[1_000:]", 5000, 1000, 5000);
    range("train[8:3]", 10, 8, 8); /* an empty slice */
    range("validation", 4, 0, 4);
}

static void test_percent_rounding(void **state) {
    range("train[:10%]", 10, 0, 1);
    range("train[:10%]", 1234, 0, 123); /* 123.4 */
    range("train[:50%]", 5, 0, 2);      /* 2.5 -> 2: halves go to the even neighbour */
    range("train[:50%]", 7, 0, 4);      /* 3.5 -> 4 */
    range("train[:50%]", 3, 0, 2);      /* 1.5 -> 2 */
    range("train[-5%:]", 100, 95, 100);
    range("train[-5%:]", 30, 28, 30);   /* -1.5 -> -2 */
    range("train[:-10%]", 15, 0, 13);   /* -1.5 -> -2 -> 13 */
    range("train[10%:20%]", 55, 6, 11); /* 5.5 -> 6, 11 */
    range("train[10%:5]", 100, 10, 10); /* one percent makes both sides percents: 5% = 5 */
    range("train[:33%](pct1_dropremainder)", 250, 0, 66); /* 33 * trunc(2.5) */
    range("train[:33%](closest)", 250, 0, 82);            /* 82.5 -> 82 */
}

static void test_parts(void **state) {
    ds_split_spec s;
    assert_int_equal(ds_split_parse("train[:10%] + train[-10%:]", &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.parts[1].name, "train");
    int64_t f, t;
    ds_split_range(&s.parts[1], 50, &f, &t);
    assert_int_equal(f, 45);
    assert_int_equal(t, 50);
    ds_split_free(&s);
}

static void refused(const char *spec, const char *why) {
    ds_split_spec s;
    eft_err_clear();
    assert_int_equal(ds_split_parse(spec, &s), -1);
    assert_contains(eft_err_msg(), spec);
    assert_contains(eft_err_msg(), why);
}

static void test_refused(void **state) {
    refused("train[:200%]", "between -100 and 100");
    refused("train[a:b]", "cannot read");
    refused("train[:10%](foo)", "closest or pct1_dropremainder");
    refused("train[1:2](closest)", "only follow a percent slice");
    refused("[:10]", "split name");
    refused("train[:10", "cannot read");
    refused("train[1__0:]", "cannot read");
    ds_split_spec s;
    assert_int_equal(ds_split_parse("train[:10%](pct1_dropremainder)", &s), 0);
    int64_t f, t;
    eft_err_clear();
    assert_int_equal(ds_split_range(&s.parts[0], 99, &f, &t), -1);
    assert_contains(eft_err_msg(), "at least 100 rows");
    ds_split_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices),
        cmocka_unit_test(test_percent_rounding),
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
