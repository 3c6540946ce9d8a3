/* test_safetensors.c: safetensors reading, writing, sharded checkpoints, and broken files.
 *
 * The byte-level reference is tests/data_files/safetensors/python_small.safetensors, written by
 * tools/make_safetensors_fixture.py with safetensors.torch.save_file. Broken files are built here
 * from one valid header, one mutation each, so that each case reads as the rule it breaks.
 */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/half.h"
#include "io/safetensors.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* ---- helpers ---- */

/* 8-byte little-endian length, the header, then `data` bytes 0, 1, 2, ... (owned by the caller). */
static unsigned char *make_file(const char *header, size_t data, size_t *n) {
    size_t h = strlen(header);
    *n = 8 + h + data;
    unsigned char *b = eft_malloc(*n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < data; i++) b[8 + h + i] = (unsigned char)i;
    return b;
}

/* `s` with the first `from` replaced by `to` (owned by the caller); `from` must occur. */
static char *replace(const char *s, const char *from, const char *to) {
    const char *at = strstr(s, from);
    assert_non_null(at);
    return eft_asprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
}

/* st_parse refuses bytes[0..n) with one user error on one line that holds every one of words
 * (up to 3, NULL-terminated). ST_SHOW=1 in the environment prints each message, to read them. */
static void expect_bad(const unsigned char *bytes, size_t n, const char *const *words) {
    st_archive *a = (st_archive *)&a;
    eft_err_clear();
    assert_int_equal(st_parse(&a, bytes, n, "bad.safetensors"), -1);
    assert_null(a);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    const char *msg = eft_err_msg();
    if (getenv("ST_SHOW")) print_message("%s\n", msg);
    assert_contains(msg, "bad.safetensors: ");
    assert_null(strchr(msg, '\n'));
    for (int i = 0; i < 3 && words[i]; i++) assert_contains(msg, words[i]);
    eft_err_clear();
}

/* Parses header + data and returns the tensor count; fails the test if it is refused. */
static size_t expect_good(const char *header, size_t data) {
    size_t n;
    unsigned char *b = make_file(header, data, &n);
    st_archive *a = NULL;
    if (st_parse(&a, b, n, "good.safetensors") != 0) print_error("%s\n", eft_err_msg());
    assert_non_null(a);
    size_t count = st_count(a);
    st_close(a);
    eft_free(b);
    return count;
}

/* value(i) = ((7 i) mod 11 - 5) / 4 and (5 i) mod 13 - 6: the fixture script's formulas. */
static float real(int i) {
    return (float)((7 * i) % 11 - 5) / 4.0f;
}
static int64_t ints(int i) {
    return (5 * i) % 13 - 6;
}

static int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

/* ---- dtypes ---- */

static void test_dtypes(void **state) {
    const char *names[] = {"BOOL", "U8", "I8", "F16", "BF16", "I32", "F32", "I64"};
    const size_t sizes[] = {1, 1, 1, 2, 2, 4, 4, 8};
    for (int d = 0; d < ST_DTYPE_COUNT; d++) {
        assert_string_equal(st_dtype_name((st_dtype)d), names[d]);
        assert_int_equal(st_dtype_size((st_dtype)d), sizes[d]);
        assert_int_equal(st_dtype_from_name(names[d]), d);
    }
    assert_int_equal(st_dtype_from_name("F64"), -1);
    assert_int_equal(st_dtype_from_name("F8_E4M3"), -1);
    assert_int_equal(st_dtype_from_name("bf16"), -1);
}

/* ---- round trip ---- */

typedef struct spec {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
} spec;

/* Every dtype; a scalar, a zero-size tensor, the largest rank; names added out of order. */
static const spec round_trip_specs[] = {
    {"model.layers.0.mlp.up_proj.weight", ST_BF16, 2, {3, 5}},
    {"model.embed.weight", ST_F32, 2, {4, 3}},
    {"half", ST_F16, 1, {7}},
    {"step", ST_I64, 0, {0}},
    {"ids", ST_I32, 3, {2, 1, 3}},
    {"bytes", ST_U8, 1, {9}},
    {"signed", ST_I8, 1, {5}},
    {"mask", ST_BOOL, 2, {2, 2}},
    {"empty", ST_F32, 2, {0, 4}},
    {"empty.bf16", ST_BF16, 1, {0}},
    {"rank8", ST_F16, 8, {1, 2, 1, 2, 1, 1, 2, 1}},
};

static void test_round_trip(void **state) {
    enum { N = EFT_ARRAY_LEN(round_trip_specs) };
    unsigned char *data[N];
    st_writer *w = st_writer_new();
    for (size_t i = 0; i < N; i++) {
        const spec *s = &round_trip_specs[i];
        size_t nbytes = (size_t)shape_numel(s->ndim, s->shape) * st_dtype_size(s->dtype);
        data[i] = eft_malloc(nbytes);
        for (size_t k = 0; k < nbytes; k++) data[i][k] = (unsigned char)(k * 31 + i * 7 + 1);
        st_writer_add(w, s->name, s->dtype, s->ndim, s->shape, nbytes ? data[i] : NULL);
    }
    st_writer_meta(w, "format", "np");
    st_writer_meta(w, "note", "line\none \"quoted\" \xc3\xa9");
    st_writer_meta(w, "format", "pt"); /* replaces, keeps its place */
    char *dir = test_tmpdir("st_round_trip");
    char *path = eft_path_join(dir, "t.safetensors");
    assert_int_equal(st_writer_write(w, path), 0);
    st_writer_free(w);

    st_archive *a;
    assert_int_equal(st_open(&a, path), 0);
    assert_int_equal(st_count(a), N);
    assert_int_equal(st_shard_count(a), 1);
    assert_string_equal(st_shard_path(a, 0), path);
    for (size_t i = 1; i < N; i++)
        assert_true(strcmp(st_at(a, i - 1)->name, st_at(a, i)->name) < 0);
    for (size_t i = 0; i < N; i++) {
        const spec *s = &round_trip_specs[i];
        const st_tensor *t = st_find(a, s->name);
        assert_non_null(t);
        assert_string_equal(t->name, s->name);
        assert_int_equal(t->dtype, s->dtype);
        assert_int_equal(t->ndim, s->ndim);
        for (int d = 0; d < s->ndim; d++) assert_int_equal(t->shape[d], s->shape[d]);
        assert_int_equal(t->numel, shape_numel(s->ndim, s->shape));
        assert_int_equal(t->nbytes, (size_t)t->numel * st_dtype_size(s->dtype));
        assert_int_equal(t->shard, 0);
        assert_string_equal(t->file, path);
        /* The writer lays data out most-aligned first after an 8-byte-padded header. */
        assert_int_equal((uintptr_t)t->data % st_dtype_size(t->dtype), 0);
        if (t->nbytes) assert_memory_equal(t->data, data[i], t->nbytes);
    }
    size_t n_meta;
    const st_meta *m = st_metadata(a, 0, &n_meta);
    assert_int_equal(n_meta, 2);
    assert_string_equal(m[0].key, "format");
    assert_string_equal(m[0].value, "pt");
    assert_string_equal(m[1].key, "note");
    assert_string_equal(st_meta_get(a, 0, "note"), "line\none \"quoted\" \xc3\xa9");
    assert_null(st_meta_get(a, 0, "absent"));

    eft_err_clear();
    assert_null(st_find(a, "model.embed"));
    assert_int_equal(eft_err_code(), EFT_OK);
    const st_tensor *t;
    assert_int_equal(st_get(a, "lm_head.weight", &t), -1);
    assert_null(t);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    assert_contains(eft_err_msg(), path);
    assert_contains(eft_err_msg(), "no tensor \"lm_head.weight\"");
    eft_err_clear();
    assert_int_equal(st_get(a, "half", &t), 0);
    assert_string_equal(t->name, "half");

    st_close(a);
    for (size_t i = 0; i < N; i++) eft_free(data[i]);
    eft_free(path);
    test_tmpdir_cleanup(dir);
}

/* An empty writer gives the 16-byte file the Rust crate's test_empty expects. Reading it back
 * was the fuzzer's first find (qsort on a NULL array of no tensors: undefined behaviour). */
static void test_write_empty(void **state) {
    st_writer *w = st_writer_new();
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(st_writer_write_to(w, f, "empty"), 0);
    fclose(f);
    assert_int_equal(len, 16);
    assert_memory_equal(buf, "\x08\0\0\0\0\0\0\0{}      ", 16);
    st_archive *a;
    assert_int_equal(st_parse(&a, buf, len, "empty"), 0);
    assert_int_equal(st_count(a), 0);
    assert_null(st_find(a, "x"));
    st_close(a);
    free(buf);
    st_writer_free(w);
}

/* ---- byte-level reference from Python ---- */

static void test_matches_python(void **state) {
    float r[6];
    uint16_t bf16[6], f16[3];
    int64_t i64[3];
    int32_t i32[2];
    uint8_t u8[5], mask[4];
    int8_t i8[3];
    for (int i = 0; i < 6; i++) r[i] = real(i), bf16[i] = eft_f32_to_bf16(real(i));
    for (int i = 0; i < 3; i++) f16[i] = eft_f32_to_f16(real(i)), i64[i] = ints(i);
    for (int i = 0; i < 3; i++) i8[i] = (int8_t)ints(i);
    for (int i = 0; i < 2; i++) i32[i] = (int32_t)ints(i);
    for (int i = 0; i < 5; i++) u8[i] = (uint8_t)(ints(i) + 6);
    for (int i = 0; i < 4; i++) mask[i] = ints(i) > 0;
    const int64_t s23[] = {2, 3}, s3[] = {3}, s22[] = {2, 2}, s04[] = {0, 4}, s2[] = {2},
                  s5[] = {5}, s4[] = {4};
    st_writer *w = st_writer_new();
    st_writer_meta(w, "format", "pt");
    st_writer_add(w, "layer.w_bf16", ST_BF16, 2, s23, bf16);
    st_writer_add(w, "layer.w_f16", ST_F16, 1, s3, f16);
    st_writer_add(w, "layer.w_f32", ST_F32, 2, s22, r);
    st_writer_add(w, "scalar", ST_F32, 0, NULL, r);
    st_writer_add(w, "empty", ST_F32, 2, s04, NULL);
    st_writer_add(w, "ids", ST_I64, 1, s3, i64);
    st_writer_add(w, "counts", ST_I32, 1, s2, i32);
    st_writer_add(w, "bytes", ST_U8, 1, s5, u8);
    st_writer_add(w, "small", ST_I8, 1, s3, i8);
    st_writer_add(w, "mask", ST_BOOL, 1, s4, mask);
    st_writer_add(w, "\xc3\xa9t\xc3\xa9.w", ST_F32, 1, s2, r);

    char *fixture =
        eft_path_join(EFT_SOURCE_DIR, "tests/data_files/safetensors/python_small.safetensors");
    size_t want_len, got_len;
    char *want = eft_read_file(fixture, &want_len);
    assert_non_null(want);
    char *got = NULL;
    FILE *f = open_memstream(&got, &got_len);
    assert_int_equal(st_writer_write_to(w, f, "mem"), 0);
    fclose(f);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    st_writer_free(w);
    free(got);
    eft_free(want);

    /* And read Python's file: values, shapes and metadata. */
    st_archive *a;
    assert_int_equal(st_open(&a, fixture), 0);
    assert_int_equal(st_count(a), 11);
    assert_string_equal(st_meta_get(a, 0, "format"), "pt");
    float out[6];
    const st_tensor *t = st_find(a, "layer.w_bf16");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(st_to_f32(t, out, 6), 0);
    for (int i = 0; i < 6; i++) assert_true(out[i] == real(i));
    assert_int_equal(st_to_f32(st_find(a, "layer.w_f16"), out, 3), 0);
    for (int i = 0; i < 3; i++) assert_true(out[i] == real(i));
    t = st_find(a, "scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->numel, 1);
    assert_int_equal(st_to_f32(t, out, 1), 0);
    assert_true(out[0] == real(0));
    t = st_find(a, "empty");
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->nbytes, 0);
    assert_int_equal(st_to_f32(t, out, 0), 0);
    t = st_find(a, "ids");
    int64_t v;
    for (int i = 0; i < 3; i++) {
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        assert_int_equal(v, ints(i));
    }
    assert_memory_equal(st_find(a, "mask")->data, mask, 4);
    assert_non_null(st_find(a, "\xc3\xa9t\xc3\xa9.w"));

    /* st_to_f32 refuses integers and a wrong element count, naming the tensor. */
    assert_int_equal(st_to_f32(t, out, 3), -1);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    assert_contains(eft_err_msg(), "tensor \"ids\" is I64, expected floating point");
    assert_int_equal(st_to_f32(st_find(a, "layer.w_f32"), out, 5), -1);
    assert_contains(eft_err_msg(), "\"layer.w_f32\" has 4 elements where 5 were expected");
    eft_err_clear();
    st_close(a);
    eft_free(fixture);
}

/* ---- lookup at checkpoint scale ---- */

static void test_many_tensors(void **state) {
    enum { N = 3000 };
    static uint16_t vals[N];
    st_writer *w = st_writer_new();
    const int64_t one[] = {1};
    char name[64];
    for (int i = 0; i < N; i++) {
        vals[i] = (uint16_t)i;
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_proj.weight", N - 1 - i);
        st_writer_add(w, name, ST_BF16, 1, one, &vals[i]);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(st_writer_write_to(w, f, "mem"), 0);
    fclose(f);
    st_writer_free(w);
    st_archive *a;
    assert_int_equal(st_parse(&a, buf, len, "mem"), 0);
    assert_int_equal(st_count(a), N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_proj.weight", N - 1 - i);
        const st_tensor *t = st_find(a, name);
        assert_non_null(t);
        uint16_t v;
        memcpy(&v, t->data, 2);
        assert_int_equal(v, i);
    }
    st_close(a);
    free(buf);
}

/* ---- sharded checkpoints ---- */

static void write_shard(const char *dir, const char *file, const char *const *names, int n,
                        const float *vals) {
    st_writer *w = st_writer_new();
    const int64_t shape[] = {2};
    for (int i = 0; i < n; i++) st_writer_add(w, names[i], ST_F32, 1, shape, vals + 2 * i);
    st_writer_meta(w, "format", "pt");
    char *path = eft_path_join(dir, file);
    assert_int_equal(st_writer_write(w, path), 0);
    eft_free(path);
    st_writer_free(w);
}

static void write_index(const char *dir, const char *weight_map) {
    char *path = eft_path_join(dir, "model.safetensors.index.json");
    char *text =
        eft_asprintf("{\"metadata\": {\"total_size\": 40}, \"weight_map\": {%s}}", weight_map);
    test_write_file(path, text);
    eft_free(text);
    eft_free(path);
}

static void expect_bad_index(const char *dir, const char *weight_map, const char *words) {
    write_index(dir, weight_map);
    st_archive *a = (st_archive *)&a;
    eft_err_clear();
    assert_int_equal(st_open(&a, dir), -1);
    assert_null(a);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    assert_contains(eft_err_msg(), "model.safetensors.index.json");
    assert_contains(eft_err_msg(), words);
    eft_err_clear();
}

#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"

static void test_sharded(void **state) {
    char *dir = test_tmpdir("st_sharded");
    const float vals[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    const char *first[] = {"embed", "layers.0.w", "layers.1.w"}, *second[] = {"norm", "head"};
    write_shard(dir, SHARD2, second, 2, vals + 6); /* written first: order must not matter */
    write_shard(dir, SHARD1, first, 3, vals);
    write_index(dir,
                "\"embed\": \"" SHARD1 "\", \"head\": \"" SHARD2 "\", \"layers.0.w\": \"" SHARD1
                "\", \"layers.1.w\": \"" SHARD1 "\", \"norm\": \"" SHARD2 "\"");
    char *index = eft_path_join(dir, "model.safetensors.index.json");
    for (int via_file = 0; via_file < 2; via_file++) {
        st_archive *a;
        assert_int_equal(st_open(&a, via_file ? index : dir), 0);
        assert_int_equal(st_count(a), 5);
        assert_int_equal(st_shard_count(a), 2);
        assert_non_null(strstr(st_shard_path(a, 0), SHARD1));
        assert_non_null(strstr(st_shard_path(a, 1), SHARD2));
        const char *sorted[] = {"embed", "head", "layers.0.w", "layers.1.w", "norm"};
        const int shard[] = {0, 1, 0, 0, 1};
        const float first_val[] = {1, 9, 3, 5, 7};
        for (int i = 0; i < 5; i++) {
            const st_tensor *t = st_at(a, (size_t)i);
            assert_string_equal(t->name, sorted[i]);
            assert_ptr_equal(st_find(a, sorted[i]), t);
            assert_int_equal(t->shard, shard[i]);
            assert_string_equal(t->file, st_shard_path(a, shard[i]));
            float out[2];
            assert_int_equal(st_to_f32(t, out, 2), 0);
            assert_true(out[0] == first_val[i] && out[1] == first_val[i] + 1);
        }
        assert_string_equal(st_meta_get(a, 1, "format"), "pt");
        st_close(a);
    }

    /* The index and the shards must agree exactly. */
    expect_bad_index(dir,
                     "\"embed\": \"" SHARD2 "\", \"head\": \"" SHARD2
                     "\", \"layers.0.w\": \"" SHARD1 "\", \"layers.1.w\": \"" SHARD1
                     "\", \"norm\": \"" SHARD2 "\"",
                     "tensor \"embed\" is listed for " SHARD2 " but is in " SHARD1);
    expect_bad_index(dir,
                     "\"embed\": \"" SHARD1 "\", \"head\": \"" SHARD2
                     "\", \"layers.0.w\": \"" SHARD1 "\", \"layers.1.w\": \"" SHARD1
                     "\", \"norm\": \"" SHARD2 "\", \"lm_head\": \"" SHARD2 "\"",
                     "tensor \"lm_head\" is listed for " SHARD2 ", which does not hold it");
    expect_bad_index(dir,
                     "\"embed\": \"" SHARD1 "\", \"head\": \"" SHARD2
                     "\", \"layers.0.w\": \"" SHARD1 "\", \"layers.1.w\": \"" SHARD1 "\"",
                     "tensor \"norm\" of ");
    expect_bad_index(dir, "\"embed\": \"" SHARD1 "\", \"embed\": \"" SHARD1 "\"",
                     "tensor \"embed\" appears twice");
    expect_bad_index(dir, "\"embed\": \"../" SHARD1 "\"",
                     "must name a shard file beside the index");
    expect_bad_index(dir, "\"embed\": 3", "found something else");
    expect_bad_index(dir, "", "the weight_map is empty");
    expect_bad_index(dir, "\"embed\": \"model-00003-of-00002.safetensors\"",
                     "shard model-00003-of-00002.safetensors");

    /* A tensor held by two shards. */
    const char *dup[] = {"embed", "extra"};
    write_shard(dir, SHARD2, dup, 2, vals);
    expect_bad_index(dir, "\"embed\": \"" SHARD1 "\", \"extra\": \"" SHARD2 "\"",
                     "tensor \"embed\" is in two shards");

    /* A broken shard is named in the message. */
    test_write_file(index, "{\"weight_map\": {\"a\": \"" SHARD1 "\"}}");
    char *shard1 = eft_path_join(dir, SHARD1);
    assert_int_equal(eft_write_file_atomic(shard1, "\x02\0\0\0\0\0\0\0{}abc", 13), 0);
    st_archive *a;
    assert_int_equal(st_open(&a, index), -1);
    assert_contains(eft_err_msg(),
                    SHARD1 ": the tensors cover 0 bytes of data but the file holds 3");
    test_write_file(index, "[1]");
    assert_int_equal(st_open(&a, index), -1);
    assert_contains(eft_err_msg(), "expected {\"weight_map\"");

    /* A folder with neither file. */
    char *empty = eft_path_join(dir, "empty");
    assert_int_equal(eft_mkdirs(empty), 0);
    assert_int_equal(st_open(&a, empty), -1);
    assert_contains(eft_err_msg(), "neither model.safetensors nor model.safetensors.index.json");
    /* model.safetensors wins over an index, as in transformers. */
    const char *solo[] = {"solo"};
    write_shard(empty, "model.safetensors", solo, 1, vals);
    char *junk_index = eft_path_join(empty, "model.safetensors.index.json");
    test_write_file(junk_index, "junk");
    assert_int_equal(st_open(&a, empty), 0);
    assert_non_null(st_find(a, "solo"));
    st_close(a);
    eft_err_clear();
    eft_free(junk_index);
    eft_free(empty);
    eft_free(shard1);
    eft_free(index);
    test_tmpdir_cleanup(dir);
}

/* ---- broken files: one rule each ---- */

/* A valid header: two tensors tiling 24 bytes of data, and one metadata entry. */
#define BASE                                                                                       \
    "{\"__metadata__\":{\"format\":\"pt\"},"                                                       \
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"                           \
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[16,24]}}"

typedef struct bad_case {
    const char *from, *to;   /* BASE with the first `from` replaced by `to` */
    const char *from2, *to2; /* and then a second replacement, when set */
    size_t data;             /* bytes of data after the header */
    const char *words[3];    /* each must be in the message */
} bad_case;

#define B "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[16,24]}"

static const bad_case bad_cases[] = {
    /* the header is JSON: one object, UTF-8, nothing after it */
    {"{\"__metadata__\"", "{\"__metadata__\" 1", 0, 0, 24, {"not valid JSON"}},
    {BASE, "[1, 2]", 0, 0, 0, {"the header is a list, expected a JSON object"}},
    {BASE, "\"a\"", 0, 0, 0, {"a string, expected a JSON object"}},
    {BASE, "", 0, 0, 0, {"not valid JSON"}},
    {"[16,24]}}", "[16,24]}} x", 0, 0, 24, {"trailing bytes after the JSON object"}},
    {"\"b\":", "\"b\xc0\xaf\":", 0, 0, 24, {"not valid UTF-8"}},         /* overlong '/' */
    {"\"b\":", "\"b\xe0\x80\xaf\":", 0, 0, 24, {"not valid UTF-8"}},     /* overlong, 3 bytes */
    {"\"b\":", "\"b\xed\xa0\x80\":", 0, 0, 24, {"not valid UTF-8"}},     /* surrogate D800 */
    {"\"b\":", "\"b\xf4\x90\x80\x80\":", 0, 0, 24, {"not valid UTF-8"}}, /* U+110000 */
    {"\"b\":", "\"b\xf8\x88\x80\x80\x80\":", 0, 0, 24, {"not valid UTF-8"}},
    {"\"b\":", "\"b\xe2\x82\":", 0, 0, 24, {"not valid UTF-8"}}, /* cut short */
    {"\"b\":", "\"b\x80\":", 0, 0, 24, {"not valid UTF-8"}},     /* lone continuation */
    {"\"b\":", "\"b\\u0000\":", 0, 0, 24, {"\\u0000"}},
    {"\"b\":", "\"b\\ud800\":", 0, 0, 24, {"not valid JSON"}}, /* escaped lone surrogate */
    /* cJSON turns a malformed \u escape into a NUL byte (found by comparing with the Rust crate
     * on the fuzzer's corpus), so escapes are checked before cJSON sees them */
    {"\"b\":", "\"b\\u0h09\":", 0, 0, 24, {"byte 98: an invalid escape"}},
    {"\"b\":", "\"b\\u[0,0]\":", 0, 0, 24, {"an invalid escape"}},
    {"\"b\":", "\"b\\x\":", 0, 0, 24, {"an invalid escape"}},
    /* cJSON's strtod takes numbers JSON does not have (found the same way) */
    {"\"shape\":[4]", "\"shape\":[0004]", 0, 0, 24, {"a malformed number"}},
    {"[16,24]", "[16.,24]", 0, 0, 24, {"a malformed number"}},
    {"[16,24]", "[16,24e]", 0, 0, 24, {"a malformed number"}},
    {"[16,24]", "[-,24]", 0, 0, 24, {"a malformed number"}},
    {"\"b\":", "\"b\x01\":", 0, 0, 24, {"raw control character"}},
    /* names and fields appear once */
    {"\"b\":", "\"a\":", 0, 0, 24, {"tensor \"a\"", "appears twice"}},
    {"\"a\":{", "\"__metadata__\":{},\"a\":{", 0, 0, 24, {"\"__metadata__\" appears twice"}},
    {"\"pt\"", "\"pt\",\"format\":\"np\"", 0, 0, 24, {"key \"format\" appears twice"}},
    {"\"dtype\":\"BF16\"",
     "\"dtype\":\"BF16\",\"dtype\":\"BF16\"",
     0,
     0,
     24,
     {"tensor \"b\"", "\"dtype\" appears twice"}},
    /* entries are objects with dtype, shape and data_offsets of the right types */
    {B, "\"b\":[16,24]", 0, 0, 16, {"tensor \"b\"", "expected an object", "found a list"}},
    {B, "\"b\":null", 0, 0, 16, {"tensor \"b\"", "found null"}},
    {"\"dtype\":\"BF16\",", "", 0, 0, 24, {"tensor \"b\"", "\"dtype\" is missing"}},
    {"\"shape\":[4],", "", 0, 0, 24, {"tensor \"b\"", "\"shape\" is missing"}},
    {",\"data_offsets\":[16,24]", "", 0, 0, 24, {"tensor \"b\"", "\"data_offsets\" is missing"}},
    {"\"dtype\":\"BF16\"",
     "\"dtype\":16",
     0,
     0,
     24,
     {"\"dtype\" must be a string, found a number"}},
    {"\"shape\":[4]", "\"shape\":\"4\"", 0, 0, 24, {"\"shape\" must be a list, found a string"}},
    {"\"shape\":[4]", "\"shape\":[\"4\"]", 0, 0, 24, {"shape[0] must be a number, found a string"}},
    /* dtypes eft reads */
    {"\"BF16\"", "\"F64\"", 0, 0, 24, {"tensor \"b\"", "dtype \"F64\" is not one eft reads"}},
    {"\"BF16\"", "\"F8_E4M3\"", 0, 0, 24, {"tensor \"b\"", "dtype \"F8_E4M3\""}},
    {"\"BF16\"", "\"bfloat16\"", 0, 0, 24, {"tensor \"b\"", "dtype \"bfloat16\""}},
    /* shapes: whole numbers >= 0, at most 8 of them, no overflow */
    {"\"shape\":[4]", "\"shape\":[-4]", 0, 0, 24, {"tensor \"b\"", "shape[0] is -4"}},
    {"\"shape\":[4]", "\"shape\":[1,2.5]", 0, 0, 24, {"shape[1] is 2.5", "whole numbers"}},
    {"\"shape\":[4]", "\"shape\":[9007199254740992]", 0, 0, 24, {"shape[0] is 9.0072e+15"}},
    {"\"shape\":[4]", "\"shape\":[1e400]", 0, 0, 24, {"shape[0] is inf"}},
    {"\"shape\":[4]", "\"shape\":[1,1,1,1,1,1,1,1,4]", 0, 0, 24, {"shape has 9 dimensions"}},
    {"\"shape\":[4]",
     "\"shape\":[4294967296,4294967296]",
     0,
     0,
     24,
     {"element count", "overflows"}},
    {"\"shape\":[4]", "\"shape\":[4503599627370496,1024]", 0, 0, 24, {"byte size", "overflows"}},
    /* data_offsets: two whole numbers, begin <= end, matching the byte size */
    {"[16,24]", "[-16,24]", 0, 0, 24, {"tensor \"b\"", "\"data_offsets\" must be [begin, end]"}},
    {"[16,24]", "[16.5,24]", 0, 0, 24, {"\"data_offsets\" must be [begin, end]"}},
    {"[16,24]", "[16,24,32]", 0, 0, 24, {"\"data_offsets\" must be [begin, end]"}},
    {"[16,24]", "{\"begin\":16}", 0, 0, 24, {"\"data_offsets\" must be [begin, end]"}},
    {"[16,24]", "[24,16]", 0, 0, 24, {"tensor \"b\"", "[24, 16] end before they begin"}},
    {"\"shape\":[4]",
     "\"shape\":[3]",
     0,
     0,
     24,
     {"tensor \"b\"", "hold 8 bytes", "[3] of BF16 needs 6"}},
    /* the ranges tile the data exactly */
    {"[16,24]", "[16,24]", 0, 0, 20, {"tensor \"b\"", "run past the end", "truncated"}},
    {"[16,24]", "[8,16]", 0, 0, 24, {"tensor \"b\"", "overlap those of \"a\" [0, 16]"}},
    {"[16,24]", "[20,28]", 0, 0, 28, {"tensor \"b\"", "ends at 16", "no gap"}},
    {"[0,16]",
     "[8,24]",
     "[16,24]",
     "[24,32]",
     32,
     {"tensor \"a\"", "the first tensor must start at 0"}},
    {"[16,24]", "[16,24]", 0, 0, 32, {"cover 24 bytes", "holds 32", "8 trailing bytes"}},
    /* __metadata__ is an object of strings */
    {"{\"format\":\"pt\"}",
     "[\"pt\"]",
     0,
     0,
     24,
     {"\"__metadata__\" must be an object of strings"}},
    {"\"format\":\"pt\"",
     "\"format\":1",
     0,
     0,
     24,
     {"\"format\" must be a string, found a number"}},
    {"\"format\":\"pt\"", "\"format\":{\"x\":\"y\"}", 0, 0, 24, {"found an object"}},
};

static void test_broken_headers(void **state) {
    assert_int_equal(expect_good(BASE, 24), 2); /* each case below breaks this one rule */
    for (size_t i = 0; i < EFT_ARRAY_LEN(bad_cases); i++) {
        const bad_case *c = &bad_cases[i];
        char *h1 = replace(BASE, c->from, c->to);
        char *h = c->from2 ? replace(h1, c->from2, c->to2) : eft_strdup(h1);
        size_t n;
        unsigned char *b = make_file(h, c->data, &n);
        expect_bad(b, n, c->words);
        eft_free(b);
        eft_free(h);
        eft_free(h1);
    }
}

/* Rules on the bytes around the JSON, which a string mutation cannot express. */
static void test_broken_framing(void **state) {
    size_t n;
    unsigned char *b = make_file(BASE, 24, &n);
    for (size_t len = 0; len < 8; len++) expect_bad(b, len, (const char *[]){"too few", NULL});

    unsigned char *c = eft_malloc(n);
    memcpy(c, b, n);
    c[0] = (unsigned char)(n - 7); /* the header length runs one byte past the file */
    c[1] = 0;
    expect_bad(c, n, (const char *[]){"only", "truncated", NULL});
    memset(c, 0xff, 8); /* 2^64 - 1 */
    expect_bad(c, n, (const char *[]){"over the 100,000,000", NULL});
    memcpy(c, "\x01\xe1\xf5\x05\0\0\0\0", 8); /* 100,000,001 */
    expect_bad(c, n, (const char *[]){"100000001 bytes, over the 100,000,000", NULL});
    eft_free(c);
    eft_free(b);

    /* A NUL after the object: not white space. */
    char *h = eft_asprintf("%s    ", BASE);
    b = make_file(h, 24, &n);
    b[8 + strlen(BASE)] = 0;
    expect_bad(b, n, (const char *[]){"control character 0x00", NULL});
    eft_free(b);
    eft_free(h);

    /* Nesting: 129 levels in a metadata value, or in a field the reader ignores. */
    char deep[300];
    memset(deep, '[', 129);
    memset(deep + 129, ']', 129);
    deep[258] = 0;
    char *to = eft_asprintf("\"format\":%s", deep);
    h = replace(BASE, "\"format\":\"pt\"", to);
    b = make_file(h, 24, &n);
    expect_bad(b, n, (const char *[]){"nested deeper than 128 levels", NULL});
    eft_free(b);
    eft_free(h);
    eft_free(to);
    deep[127] = deep[128] = ' '; /* 127 levels inside an entry: 129 in all */
    deep[129] = deep[130] = ' ';
    to = eft_asprintf("\"extra\":%s,\"dtype\"", deep);
    h = replace(BASE, "\"dtype\"", to);
    b = make_file(h, 24, &n);
    expect_bad(b, n, (const char *[]){"nested deeper than 128 levels", NULL});
    eft_free(b);
    eft_free(h);
    eft_free(to);
}

/* What the rules allow: keep these, so that the checks above are not simply too strict. */
static void test_valid_variants(void **state) {
    char *h = eft_asprintf("%s \t\r\n   ", BASE); /* white space after the object */
    assert_int_equal(expect_good(h, 24), 2);
    eft_free(h);
    /* Entries in any JSON order: only the offsets must tile the data. */
    assert_int_equal(
        expect_good("{\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[16,24]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}",
                    24),
        2);
    /* Zero-size tensors, at the start, between others and at the end; a scalar. */
    assert_int_equal(
        expect_good("{\"z0\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                    "\"s\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]},"
                    "\"z1\":{\"dtype\":\"I64\",\"shape\":[5,0],\"data_offsets\":[4,4]},"
                    "\"u\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},"
                    "\"z2\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":[8,8]}}",
                    8),
        5);
    /* Unknown fields are ignored, as by the Rust crate; __metadata__ may be null or absent. */
    h = replace(BASE, "\"dtype\":\"BF16\"",
                "\"extra\":[[{\"x\":1}],-0,1.5e-3,10E+2,true,null],\"dtype\":\"BF16\"");
    assert_int_equal(expect_good(h, 24), 2);
    eft_free(h);
    h = replace(BASE, "{\"format\":\"pt\"}", "null");
    assert_int_equal(expect_good(h, 24), 2);
    eft_free(h);
    assert_int_equal(expect_good("{}", 0), 0);
    assert_int_equal(expect_good("  {\"__metadata__\":{}}  ", 0), 0);
    /* Escapes that decode to valid UTF-8 names; 128 levels of nesting is the limit, not over. */
    assert_int_equal(expect_good("{\"\\u00e9\\ud83d\\ude00\\n\":{\"dtype\":\"U8\",\"shape\":[1],"
                                 "\"data_offsets\":[0,1]}}",
                                 1),
                     1);
    char deep[300];
    memset(deep, '[', 126); /* 126 inside an entry inside the root */
    memset(deep + 126, ']', 126);
    deep[252] = 0;
    char *to = eft_asprintf("\"extra\":%s,\"dtype\"", deep);
    h = replace(BASE, "\"dtype\"", to);
    assert_int_equal(expect_good(h, 24), 2);
    eft_free(h);
    eft_free(to);
}

/* Files on disk: an empty file, a missing one. */
static void test_file_errors(void **state) {
    char *dir = test_tmpdir("st_files");
    char *path = eft_path_join(dir, "empty.safetensors");
    test_write_file(path, "");
    st_archive *a = (st_archive *)&a;
    assert_int_equal(st_open(&a, path), -1);
    assert_null(a);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    assert_contains(eft_err_msg(), "empty.safetensors: the file has 0 bytes, too few");
    eft_free(path);
    path = eft_path_join(dir, "missing.safetensors");
    assert_int_equal(st_open(&a, path), -1);
    assert_contains(eft_err_msg(), "missing.safetensors");
    eft_err_clear();
    eft_free(path);
    test_tmpdir_cleanup(dir);
}

/* No "*.tmp.*" file is left in dir. */
static void assert_no_temporary(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);
}

/* A failed write leaves the previous file as it was: the writer refusing its input, and the disk
 * refusing the bytes halfway (a file size limit stands in for a full disk). */
static void test_atomic_write_failure(void **state) {
    char *dir = test_tmpdir("st_atomic");
    char *path = eft_path_join(dir, "adapter_model.safetensors");
    const float small[2] = {1, 2};
    const int64_t two[] = {2};
    st_writer *w = st_writer_new();
    st_writer_add(w, "kept", ST_F32, 1, two, small);
    assert_int_equal(st_writer_write(w, path), 0);
    st_writer_free(w);
    size_t before_len;
    char *before = eft_read_file(path, &before_len);

    w = st_writer_new(); /* a name added twice: refused before anything is written */
    st_writer_add(w, "x", ST_F32, 1, two, small);
    st_writer_add(w, "x", ST_BF16, 1, two, small);
    assert_int_equal(st_writer_write(w, path), -1);
    assert_int_equal(eft_err_code(), EFT_ERR_INTERNAL);
    assert_contains(eft_err_msg(), "tensor \"x\" was added twice");
    st_writer_free(w);
    eft_err_clear();

    enum { BIG = 1 << 18 }; /* 1 MiB of floats, written against a 64 KiB file size limit */
    float *big = eft_calloc(BIG, sizeof *big);
    const int64_t big_shape[] = {BIG};
    w = st_writer_new();
    st_writer_add(w, "big", ST_F32, 1, big_shape, big);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 1 << 16;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of a signal */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int r = st_writer_write(w, path);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(r, -1);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    assert_contains(eft_err_msg(), "Writing failed");
    eft_err_clear();
    st_writer_free(w);
    eft_free(big);

    size_t after_len;
    char *after = eft_read_file(path, &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    assert_no_temporary(dir);
    /* A folder that does not exist: nothing is created. */
    char *nowhere = eft_path_join(dir, "no/such/folder/x.safetensors");
    w = st_writer_new();
    assert_int_equal(st_writer_write(w, nowhere), -1);
    assert_int_equal(eft_err_code(), EFT_ERR_USER);
    st_writer_free(w);
    eft_err_clear();
    eft_free(nowhere);
    eft_free(after);
    eft_free(before);
    eft_free(path);
    test_tmpdir_cleanup(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_write_empty),
        cmocka_unit_test(test_matches_python),
        cmocka_unit_test(test_many_tensors),
        cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_broken_headers),
        cmocka_unit_test(test_broken_framing),
        cmocka_unit_test(test_valid_variants),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_atomic_write_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
