/* ds_test.h: what the data tests share: a byte-level tokenizer whose ids a test can compute by
 * hand, and small file helpers. Included by tests/data/test_*.c (static functions, no object).
 *
 * The tokenizer: <pad> 0, <eos> 1, <bos> 2, <unk> 3, then one token per byte, "<0xNN>" = NN + 4
 * (a BPE model with byte fallback and no merges, so every byte of the text is one token), and
 * the added special tokens <|turn> 260, <turn|> 261. The post-processor adds <bos>;
 * tokenizer_config.json names <eos> as eos_token.
 */
#ifndef EFT_TESTS_DATA_DS_TEST_H
#define EFT_TESTS_DATA_DS_TEST_H

#include "support/test.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"
#include "data/ds_format.h"
#include "io/config.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_PAD = 0, T_EOS = 1, T_BOS = 2, T_UNK = 3, T_BYTE0 = 4, T_TURN = 260, T_ENDTURN = 261 };

/* The id of byte c. */
static inline int32_t tb(unsigned char c) {
    return T_BYTE0 + c;
}

static inline char *ds_test_tokenizer_json(void) {
    eft_buf b = {0};
    eft_buf_puts(&b, "{\"version\":\"1.0\",\"added_tokens\":[");
    const char *special[] = {"<pad>", "<eos>", "<bos>", "<unk>"};
    for (int i = 0; i < 4; i++)
        eft_buf_printf(&b,
                       "{\"id\":%d,\"content\":\"%s\",\"special\":true,\"normalized\":false,"
                       "\"single_word\":false,\"lstrip\":false,\"rstrip\":false},",
                       i, special[i]);
    eft_buf_printf(&b,
                   "{\"id\":%d,\"content\":\"<|turn>\",\"special\":true,\"normalized\":false},"
                   "{\"id\":%d,\"content\":\"<turn|>\",\"special\":true,\"normalized\":false}],",
                   T_TURN, T_ENDTURN);
    eft_buf_puts(&b, "\"normalizer\":null,\"pre_tokenizer\":null,"
                     "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{"
                     "\"SpecialToken\":{\"id\":\"<bos>\",\"type_id\":0}},{\"Sequence\":{\"id\":"
                     "\"A\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":{\"<bos>\":{\"id\":"
                     "\"<bos>\",\"ids\":[2],\"tokens\":[\"<bos>\"]}}},"
                     "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"},"
                     "{\"type\":\"Fuse\"}]},"
                     "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,"
                     "\"vocab\":{\"<pad>\":0,\"<eos>\":1,\"<bos>\":2,\"<unk>\":3");
    for (int c = 0; c < 256; c++) eft_buf_printf(&b, ",\"<0x%02X>\":%d", c, T_BYTE0 + c);
    eft_buf_puts(&b, ",\"<|turn>\":260,\"<turn|>\":261},\"merges\":[]}}");
    return eft_buf_take(&b);
}

/* Writes tokenizer.json and tokenizer_config.json into dir (created). */
static inline void ds_test_write_tokenizer(const char *dir) {
    assert_int_equal(eft_mkdirs(dir), 0);
    char *json = ds_test_tokenizer_json();
    char *p = eft_path_join(dir, "tokenizer.json");
    test_write_file(p, json);
    eft_free(p);
    eft_free(json);
    p = eft_path_join(dir, "tokenizer_config.json");
    test_write_file(p, "{\"eos_token\":\"<eos>\",\"pad_token\":\"<pad>\",\"bos_token\":\"<bos>\"}");
    eft_free(p);
}

static inline tok_tokenizer *ds_test_tokenizer(void) {
    char *json = ds_test_tokenizer_json();
    const char *cfg = "{\"eos_token\":\"<eos>\",\"pad_token\":\"<pad>\",\"bos_token\":\"<bos>\"}";
    tok_tokenizer *t = tok_load_mem(json, strlen(json), cfg, strlen(cfg), "test-tokenizer");
    eft_free(json);
    if (!t) fail_msg("%s", eft_err_msg());
    return t;
}

/* Appends the byte ids of s to ids[*n...]. */
static inline void ds_test_bytes(int32_t *ids, int *n, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) ids[(*n)++] = tb(*p);
}

/* Writes path inside dir; returns the joined path (owned). */
static inline char *ds_test_file(const char *dir, const char *name, const char *text) {
    char *p = eft_path_join(dir, name);
    char *slash = strrchr(p, '/');
    if (slash) {
        *slash = 0;
        eft_mkdirs(p);
        *slash = '/';
    }
    test_write_file(p, text);
    return p;
}

/* A config from YAML text whose base_model is `model_dir` (holding the test tokenizer):
 * loaded, validated and with its paths resolved, or the test fails with the error. The text
 * may leave out base_model and learning_rate. */
static inline void ds_test_config(eft_config *c, const char *model_dir, const char *yaml) {
    char *text = eft_asprintf("base_model: %s\nlearning_rate: 0.0001\n%s", model_dir, yaml);
    if (cfg_load_string(c, text, "test.yaml") || cfg_validate(c) || cfg_resolve_paths(c))
        fail_msg("config: %s\n%s", eft_err_msg(), text);
    eft_free(text);
}

/* Same, returning the status so that a test can check the error. */
static inline int ds_test_config_rc(eft_config *c, const char *model_dir, const char *yaml) {
    char *text = eft_asprintf("base_model: %s\nlearning_rate: 0.0001\n%s", model_dir, yaml);
    int rc = cfg_load_string(c, text, "test.yaml") || cfg_validate(c) || cfg_resolve_paths(c);
    eft_free(text);
    return rc ? -1 : 0;
}

/* The fixture of the data tests: a temporary folder, a model folder in it holding the test
 * tokenizer, and that tokenizer loaded. */
typedef struct ds_fx {
    char *dir, *model;
    tok_tokenizer *tok;
} ds_fx;

static inline ds_fx *ds_fx_open(const char *name) {
    ds_fx *f = calloc(1, sizeof *f);
    f->dir = test_tmpdir(name);
    f->model = eft_path_join(f->dir, "model");
    ds_test_write_tokenizer(f->model);
    f->tok = ds_test_tokenizer();
    return f;
}

static inline int ds_fx_teardown(void **state) {
    ds_fx *f = *state;
    tok_free(f->tok);
    eft_free(f->model);
    test_tmpdir_cleanup(f->dir);
    free(f);
    return 0;
}

/* Formats every row of `data`, written to <dir>/<file>, with the dataset entry
 * `{path: ..., <entry>}` and the top-level keys `top`. Returns 0 with the samples in *out (and
 * the number of skipped rows in *skips when not NULL), or -1 with the error recorded. */
static inline int ds_test_format_rows(ds_fx *f, const char *file, const char *top,
                                      const char *entry, const char *data, ds_samples *out,
                                      int *skips) {
    char *path = ds_test_file(f->dir, file, data);
    char *yaml = eft_asprintf("%s\ndatasets: [{path: %s, %s}]\n", top, path, entry);
    eft_config c;
    ds_test_config(&c, f->model, yaml);
    ds_samples_init(out);
    ds_source src;
    ds_format fmt = {0};
    int rc = ds_source_open(&src, &c.datasets.v[0], "datasets[0]", "train", 42);
    if (!rc)
        rc = ds_format_init(&fmt, &c, &c.datasets.v[0], "datasets[0]", f->tok, c.sequence_len.v);
    ds_row row;
    int got;
    if (skips) *skips = 0;
    while (!rc && (got = ds_source_next(&src, &row)) != 0) {
        if (got < 0) {
            rc = -1;
            break;
        }
        ds_at at = {&src, &row};
        ds_skip skip;
        rc = ds_format_row(&fmt, row.v, &at, out, &skip);
        if (skips && skip) (*skips)++;
        cJSON_Delete(row.v);
    }
    ds_format_free(&fmt);
    ds_source_close(&src);
    cfg_free(&c);
    eft_free(yaml);
    eft_free(path);
    return rc;
}

#endif
