/* test_nf4.c: NF4 quantisation and dequantisation bit for bit against bitsandbytes
 * (tests/data_files/nf4/reference.safetensors, written by tools/make_nf4_reference.py from
 * quantize_4bit / dequantize_4bit on the CPU): the dynamic map; each step of the quantisation on
 * the reference's own inputs (codes and first-stage absmax; the offset; the 8-bit absmax and the
 * per-256 scales); the whole quantisation; dequantisation to fp32 and to bf16; the absmax
 * quantisation alone on values where bitsandbytes' grid rounding differs from the nearest entry;
 * and the storage size the memory plan assumes. */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/half.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/g4_memory.h"
#include "peft/nf4.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static st_archive *ref;
static cJSON *cases; /* the metadata's "cases" */

static int setup(void **state) {
    char *path = eft_path_join(EFT_SOURCE_DIR, "tests/data_files/nf4/reference.safetensors");
    assert_int_equal(st_open(&ref, path), 0);
    eft_free(path);
    const char *meta = st_meta_get(ref, 0, "reference");
    assert_non_null(meta);
    cJSON *root = eft_json_parse(meta, strlen(meta), "reference");
    assert_non_null(root);
    cases = cJSON_DetachItemFromObject(root, "cases");
    cJSON_Delete(root);
    assert_non_null(cases);
    return 0;
}

static int teardown(void **state) {
    cJSON_Delete(cases);
    st_close(ref);
    return 0;
}

static const st_tensor *get(const char *name, const char *part) {
    char key[128];
    snprintf(key, sizeof key, "%s%s%s", name, part ? "." : "", part ? part : "");
    const st_tensor *t = st_find(ref, key);
    if (!t) fail_msg("reference lacks %s", key);
    return t;
}

/* Bitwise equality of n bytes, reporting the first difference. */
static void same_bytes(const void *a, const void *b, size_t n, const char *what) {
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) fail_msg("%s differs from bitsandbytes at byte %zu", what, i);
}

static int32_t bits(float f) {
    int32_t i;
    memcpy(&i, &f, 4);
    return i;
}

static void test_map(void **state) {
    float map[256];
    nf4_dynamic_map(map);
    const st_tensor *r = get("map", NULL);
    assert_int_equal(r->numel, 256);
    same_bytes(map, r->data, sizeof map, "the dynamic map");
    same_bytes(nf4_map(), r->data, sizeof map, "the shared dynamic map");
    /* Anchors of training-math.md 5.2. */
    assert_true(map[0] == -0x1.fc6666p-1f && map[127] == 0.0f && map[255] == 1.0f);
    assert_true(map[126] == -0x1.27476ep-21f && map[128] == 0x1.27476ep-21f);
    for (int j = 1; j < 128; j++) assert_true(map[127 - j] == -map[127 + j]);
}

/* The reference's arrays as an ops_nf4 (its own offset and the map). */
static ops_nf4 ref_tensor(const char *name, int64_t n, bool round_bf16) {
    float offset;
    memcpy(&offset, get(name, "offset")->data, 4);
    return (ops_nf4){.n = n,
                     .codes = get(name, "codes")->data,
                     .qabsmax = get(name, "qabsmax")->data,
                     .absmax2 = get(name, "absmax2")->data,
                     .map = get("map", NULL)->data,
                     .offset = offset,
                     .round_bf16 = round_bf16};
}

/* Dequantisation of t to fp32 and bf16 equals the reference's. */
static void check_dequant(const char *name, ops_nf4 t, const char *who) {
    int64_t n = t.n;
    float *out = eft_malloc((size_t)n * sizeof(float));
    char what[160];
    t.round_bf16 = false;
    ops_nf4_dequantize(out, &t, 0, n);
    snprintf(what, sizeof what, "%s: %s dequantised to fp32", name, who);
    same_bytes(out, get(name, "dequant_f32")->data, (size_t)n * 4, what);
    t.round_bf16 = true;
    ops_nf4_dequantize(out, &t, 0, n);
    uint16_t *b = eft_malloc((size_t)n * sizeof(uint16_t));
    for (int64_t i = 0; i < n; i++) b[i] = eft_f32_to_bf16(out[i]);
    for (int64_t i = 0; i < n; i++) assert_true(eft_bf16_to_f32(b[i]) == out[i]);
    snprintf(what, sizeof what, "%s: %s dequantised to bf16", name, who);
    same_bytes(b, get(name, "dequant_bf16")->data, (size_t)n * 2, what);
    /* A range that starts and ends inside blocks gives the same values. */
    if (n > 100) {
        t.round_bf16 = false;
        ops_nf4_dequantize(out, &t, 37, n - 60);
        same_bytes(out, (const float *)get(name, "dequant_f32")->data + 37, (size_t)(n - 60) * 4,
                   what);
    }
    eft_free(b);
    eft_free(out);
}

static void check_case(const char *name) {
    const st_tensor *in = get(name, "input");
    int64_t n = in->numel, blocks = ops_nf4_blocks(n), groups = ops_nf4_groups(n);
    assert_int_equal(get(name, "codes")->numel, (n + 1) / 2);
    assert_int_equal(get(name, "absmax")->numel, blocks);
    assert_int_equal(get(name, "absmax2")->numel, groups);

    /* Step 1 on the input. */
    uint8_t *codes = eft_malloc((size_t)(n + 1) / 2);
    float *absmax = eft_malloc((size_t)blocks * sizeof(float));
    nf4_quantize_blocks(codes, absmax, in->data, in->dtype, n);
    char what[160];
    snprintf(what, sizeof what, "%s: codes", name);
    same_bytes(codes, get(name, "codes")->data, (size_t)(n + 1) / 2, what);
    snprintf(what, sizeof what, "%s: absmax", name);
    same_bytes(absmax, get(name, "absmax")->data, (size_t)blocks * 4, what);

    /* Step 2: the correctly rounded mean, which torch's float32 mean equals where the reference
     * says so, and is within 2 ulp of everywhere. */
    float ref_offset, offset = nf4_mean(absmax, blocks);
    memcpy(&ref_offset, get(name, "offset")->data, 4);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(cases, name);
    assert_non_null(c);
    bool exact = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "offset_is_correctly_rounded"));
    if (exact) assert_true(bits(offset) == bits(ref_offset));
    assert_true(abs(bits(offset) - bits(ref_offset)) <= 2);

    /* Step 3 on the reference's absmax and offset. */
    uint8_t *qabsmax = eft_malloc((size_t)blocks);
    float *absmax2 = eft_malloc((size_t)groups * sizeof(float));
    nf4_quantize_absmax(qabsmax, absmax2, get(name, "absmax")->data, blocks, ref_offset, nf4_map());
    snprintf(what, sizeof what, "%s: qabsmax", name);
    same_bytes(qabsmax, get(name, "qabsmax")->data, (size_t)blocks, what);
    snprintf(what, sizeof what, "%s: absmax2", name);
    same_bytes(absmax2, get(name, "absmax2")->data, (size_t)groups * 4, what);

    /* Dequantisation of the reference's tensor. */
    check_dequant(name, ref_tensor(name, n, false), "the reference");

    /* The whole quantisation: the same tensor when the offsets agree. */
    ops_nf4 *q = nf4_quantize(in->data, in->dtype, n, true);
    assert_int_equal(q->n, n);
    assert_true(q->round_bf16 && q->map == nf4_map());
    assert_true(bits(q->offset) == bits(offset));
    same_bytes(q->codes, get(name, "codes")->data, (size_t)(n + 1) / 2, "codes");
    if (bits(offset) == bits(ref_offset)) {
        same_bytes(q->qabsmax, get(name, "qabsmax")->data, (size_t)blocks, "qabsmax");
        same_bytes(q->absmax2, get(name, "absmax2")->data, (size_t)groups * 4, "absmax2");
        check_dequant(name, *q, "eft's quantisation");
    }
    /* The storage the memory plan counts. */
    assert_int_equal(nf4_bytes(q), g4_nf4_bytes(n));
    eft_free(q);
    eft_free(codes), eft_free(absmax), eft_free(qabsmax), eft_free(absmax2);
}

static void test_cases(void **state) {
    int seen = 0;
    for (const cJSON *c = cases->child; c; c = c->next) {
        char key[128];
        snprintf(key, sizeof key, "%s.input", c->string);
        if (!st_find(ref, key)) continue; /* the grid case (test_grid) */
        check_case(c->string);
        seen++;
    }
    assert_true(seen >= 6);
}

/* Step 3 where bitsandbytes' CPU grid and the nearest map entry disagree (near zero). */
static void test_grid(void **state) {
    const st_tensor *c = get("grid", "c");
    int64_t n = c->numel, groups = (n + 255) / 256;
    uint8_t *q = eft_malloc((size_t)n);
    float *a2 = eft_malloc((size_t)groups * sizeof(float));
    nf4_quantize_absmax(q, a2, c->data, n, 0.0f, nf4_map());
    same_bytes(q, get("grid", "qabsmax")->data, (size_t)n, "grid: qabsmax");
    same_bytes(a2, get("grid", "absmax2")->data, (size_t)groups * 4, "grid: absmax2");
    /* The case is one where the rule matters: some indices are not the nearest entry. */
    const float *map = nf4_map(), *v = c->data;
    int differ = 0;
    for (int64_t i = 0; i < n; i++) {
        float x = v[i] * (1.0f / a2[i / 256]);
        int best = 0;
        for (int k = 1; k < 256; k++)
            if (fabsf(x - map[k]) < fabsf(x - map[best])) best = k;
        differ += best != q[i];
    }
    assert_true(differ > 0);
    eft_free(q), eft_free(a2);
}

/* Blocks of zeros, partial blocks and odd counts from fresh inputs: dequantisation inverts the
 * quantisation up to the 4-bit step, and zero stays zero. */
static void test_properties(void **state) {
    for (int64_t n = 1; n < 700; n += 37) {
        float *x = eft_malloc((size_t)n * sizeof(float)), *y = eft_malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) x[i] = (i % 64 < 5) ? 0.0f : sinf((float)i) * (1 + i % 7);
        ops_nf4 *q = nf4_quantize(x, ST_F32, n, false);
        ops_nf4_dequantize(y, q, 0, n);
        for (int64_t i = 0; i < n; i++) {
            int64_t b0 = i / 64 * 64, b1 = EFT_MIN(b0 + 64, n);
            float amax = 0;
            for (int64_t j = b0; j < b1; j++) amax = fmaxf(amax, fabsf(x[j]));
            /* half the widest NF4 gap (0.30), plus the 8-bit absmax error */
            assert_true(fabsf(y[i] - x[i]) <= 0.16f * amax + 1e-6f);
            if (x[i] == 0.0f) assert_true(y[i] == 0.0f);
        }
        if (n & 1) assert_int_equal(q->codes[n / 2] & 15, 7); /* the padding nibble is 0.0 */
        eft_free(q), eft_free(x), eft_free(y);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_properties),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
