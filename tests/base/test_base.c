/* test_base.c: errors, bf16/f16 rounding, the RNG, arenas, atomic files, JSON numbers. */
#include "support/test.h"

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"
#include "base/half.h"
#include "base/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_error_record(void **state) {
    eft_err_clear();
    assert_int_equal(eft_err_code(), EFT_OK);
    assert_int_equal(eft_fail("line one\nline two %d", 7), -1);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    assert_string_equal(eft_err_msg(), "line one line two 7"); /* one line, always */
    eft_err_context("config.yaml");
    assert_string_equal(eft_err_msg(), "config.yaml: line one line two 7");
    eft_fail_internal("broken");
    assert_int_equal(eft_err_code(), EFT_ERR_INTERNAL);
    eft_err_clear();
}

static void test_bf16_rounding(void **state) {
    /* 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties go to even (1.0). */
    assert_true(eft_round_bf16(1.0f + 0x1p-8f) == 1.0f);
    /* 1 + 3*2^-8 is halfway between 1.0078125 (odd) and 1.015625 (even). */
    assert_true(eft_round_bf16(1.0f + 3 * 0x1p-8f) == 1.015625f);
    assert_true(eft_round_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 1.0078125f);
    /* The embedding scales of the spec's table: bf16(sqrt(H)). */
    assert_true(eft_round_bf16(sqrtf(5376.0f)) == 73.5f);
    assert_true(eft_round_bf16(sqrtf(1536.0f)) == 39.25f);
    assert_true(eft_round_bf16(sqrtf(2816.0f)) == 53.0f);
    assert_true(isnan(eft_bf16_to_f32(eft_f32_to_bf16(NAN))));
    assert_true(eft_bf16_to_f32(eft_f32_to_bf16(INFINITY)) == INFINITY);
    assert_int_equal(eft_f32_to_bf16(-2.0f), 0xc000);
}

static void test_f16(void **state) {
    assert_int_equal(eft_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(eft_f32_to_f16(-2.5f), 0xc100);
    assert_int_equal(eft_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(eft_f32_to_f16(1e6f), 0x7c00);
    assert_int_equal(eft_f32_to_f16(0x1p-24f), 0x0001);
    assert_true(eft_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(eft_f16_to_f32(0x3555) == 0.333251953125f);
    /* Every finite half survives a round trip through fp32. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        assert_int_equal(eft_f32_to_f16(eft_f16_to_f32((uint16_t)h)), h);
    }
}

static void test_rng(void **state) {
    eft_rng a, b, c;
    eft_rng_seed(&a, 42, 1);
    eft_rng_seed(&b, 42, 1);
    eft_rng_seed(&c, 42, 2);
    int same_c = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = eft_rng_u64(&a), y = eft_rng_u64(&b), z = eft_rng_u64(&c);
        assert_true(x == y);
        same_c += x == z;
    }
    assert_int_equal(same_c, 0);
    /* Normal draws: mean near 0 and variance near 1 over many samples. */
    double s = 0, s2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double v = eft_rng_normal(&a);
        s += v;
        s2 += v * v;
    }
    assert_close(s / n, 0.0, 0.01);
    assert_close(s2 / n, 1.0, 0.02);
    uint32_t perm[100];
    for (uint32_t i = 0; i < 100; i++) perm[i] = i;
    eft_rng_shuffle_u32(&a, perm, 100);
    int seen[100] = {0}, moved = 0;
    for (int i = 0; i < 100; i++) seen[perm[i]]++, moved += perm[i] != (uint32_t)i;
    for (int i = 0; i < 100; i++) assert_int_equal(seen[i], 1);
    assert_true(moved > 50);
}

static void test_arena(void **state) {
    eft_arena m;
    eft_arena_init_measure(&m);
    assert_null(eft_arena_alloc(&m, 10));
    assert_null(eft_arena_alloc(&m, 100));
    assert_int_equal(m.peak, 64 + 128);
    eft_arena a;
    eft_arena_init(&a, m.peak);
    char *p = eft_arena_alloc(&a, 10);
    size_t mark = eft_arena_mark(&a);
    char *q = eft_arena_calloc(&a, 100);
    assert_int_equal(((uintptr_t)p | (uintptr_t)q) % 64, 0);
    assert_int_equal(q - p, 64);
    assert_int_equal(q[99], 0);
    eft_arena_reset(&a, mark);
    assert_ptr_equal(eft_arena_alloc(&a, 100), q);
    eft_arena_free(&a);
}

static void test_atomic_write(void **state) {
    char *dir = test_tmpdir("atomic");
    char *path = eft_path_join(dir, "f.txt");
    assert_int_equal(eft_write_file_atomic(path, "first", 5), 0);
    eft_atomic a;
    assert_int_equal(eft_atomic_open(&a, path), 0);
    fputs("second, never committed", a.f);
    eft_atomic_abort(&a);
    char *text = eft_read_file(path, NULL);
    assert_string_equal(text, "first"); /* the old file survives an aborted write */
    eft_free(text);
    /* A write into a missing folder is a user error naming the path. */
    char *bad = eft_path_join(dir, "missing/f.txt");
    assert_int_equal(eft_write_file_atomic(bad, "x", 1), -1);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    assert_contains(eft_err_msg(), "missing/f.txt");
    eft_err_clear();
    eft_free(bad);
    eft_free(path);
    test_tmpdir_cleanup(dir);
}

static void test_json_double(void **state) {
    const struct {
        double v;
        const char *s;
    } cases[] = {{0.0001, "0.0001"}, {6.173165676349103e-05, "6.173165676349103e-05"},
                 {1.0, "1.0"}, {0.1 + 0.2, "0.30000000000000004"}, {-2.5e300, "-2.5e+300"},
                 {INFINITY, "Infinity"}};
    for (size_t i = 0; i < EFT_ARRAY_LEN(cases); i++) {
        eft_buf b = {0};
        eft_buf_json_double(&b, cases[i].v);
        assert_string_equal(b.data, cases[i].s);
        eft_buf_free(&b);
    }
    eft_buf b = {0};
    eft_buf_json_str(&b, "a\"b\\c\n\x01");
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
    eft_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_record), cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_f16),          cmocka_unit_test(test_rng),
        cmocka_unit_test(test_arena),        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_json_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
