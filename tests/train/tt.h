/* tt.h: what the end-to-end trainer tests share (tests/train/test_train_*.c; static functions,
 * no object): a tiny model, configs, running `eft train`, and reading what a run wrote.
 *
 * Runs use tiny-31b (`eft init-model --vocab-size 384`, so that the demo tokenizer of
 * examples/demo fits) and the pre-tokenized rows of tests/data_files/train/rows.jsonl (20 rows of
 * 6 to 48 tokens; see tools/make_train_reference.py), so that a training step takes about a
 * millisecond and a test's runs a fraction of a second. The runs use one OpenMP thread
 * (tt_env_init sets OMP_NUM_THREADS=1): on a model this small two threads mostly wait for each
 * other, 25 times slower on a loaded two-core machine. test_train_resume.c trains with two
 * threads once, to check that resuming stays bit-exact with threads.
 *
 *     tt_env e;
 *     tt_env_init(&e, "resume", 3);                  // folder + model, seed 3
 *     char *cfg = tt_config(&e, "a", "adapter: lora\nlora_r: 2\n...");   // e.dir/a.yaml
 *     assert_int_equal(tt_train(cfg, "--max_steps 4", NULL), 0);      // output in e.dir/a
 *     cJSON *m = tt_metrics(e.dir, "a");                               // metrics.jsonl lines
 */
#ifndef EFT_TESTS_TRAIN_TT_H
#define EFT_TESTS_TRAIN_TT_H

#include "support/test.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"
#include "io/json.h"
#include "io/safetensors.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define TT_FIXTURES EFT_SOURCE_DIR "/tests/data_files/train"
#define TT_ROWS     TT_FIXTURES "/rows.jsonl"

typedef struct tt_env {
    char *dir;   /* the test's temporary folder (owned) */
    char *model; /* dir/model, a tiny-31b checkpoint (owned) */
} tt_env;

static inline void tt_env_init(tt_env *e, const char *name, int seed) {
    setenv("OMP_NUM_THREADS", "1", 1);
    e->dir = test_tmpdir(name);
    e->model = eft_path_join(e->dir, "model");
    char *cmd = eft_asprintf("init-model --preset tiny-31b --out %s --seed %d --vocab-size 384",
                             e->model, seed);
    assert_int_equal(test_run_eft(cmd, NULL, NULL), 0);
    eft_free(cmd);
}

static inline void tt_env_free(tt_env *e) {
    test_tmpdir_cleanup(e->dir);
    eft_free(e->model);
}

/* dir/name (owned): the output_dir of config `name`, or any file or folder of the test. */
static inline char *tt_path(const tt_env *e, const char *name) {
    return eft_path_join(e->dir, name);
}

/* Writes dir/<name>.yaml: the model, the demo tokenizer, rows.jsonl as the dataset, a prepared
 * cache shared by the test's runs, output_dir dir/<name>, then `keys` (YAML lines, each ending
 * in a newline). Returns the config's path (owned). */
static inline char *tt_config(const tt_env *e, const char *name, const char *keys) {
    char *path = eft_asprintf("%s/%s.yaml", e->dir, name);
    char *text = eft_asprintf("base_model: %s\n"
                              "tokenizer_config: %s/examples/demo\n"
                              "datasets:\n  - path: %s\n"
                              "dataset_prepared_path: %s/prepared\n"
                              "output_dir: %s/%s\n"
                              "%s",
                              e->model, EFT_SOURCE_DIR, TT_ROWS, e->dir, e->dir, name, keys);
    test_write_file(path, text);
    eft_free(text);
    return path;
}

/* A JSON object's members as YAML lines "key: value" (strings single-quoted), appended to b. */
static inline void tt_yaml_from_json(eft_buf *b, const cJSON *obj) {
    for (const cJSON *k = obj->child; k; k = k->next) {
        eft_buf_printf(b, "%s: ", k->string);
        if (cJSON_IsBool(k)) {
            eft_buf_puts(b, cJSON_IsTrue(k) ? "true" : "false");
        } else if (cJSON_IsNumber(k)) {
            eft_buf_json_double(b, k->valuedouble);
        } else {
            assert_true(cJSON_IsString(k));
            eft_buf_putc(b, '\'');
            for (const char *s = k->valuestring; *s; s++) {
                if (*s == '\'') eft_buf_putc(b, '\'');
                eft_buf_putc(b, *s);
            }
            eft_buf_putc(b, '\'');
        }
        eft_buf_putc(b, '\n');
    }
}

/* `eft train CONFIG ARGS`: the exit status; stderr in *err when err is given (owned). */
static inline int tt_train(const char *config, const char *args, char **err) {
    char *cmd = eft_asprintf("train %s %s", config, args ? args : "");
    char *e = NULL;
    int rc = test_run_eft(cmd, NULL, &e);
    eft_free(cmd);
    if (err)
        *err = e;
    else
        eft_free(e);
    return rc;
}

/* Like tt_train, but a failure fails the test with eft's message. */
static inline void tt_train_ok(const char *config, const char *args) {
    char *err = NULL;
    int rc = tt_train(config, args, &err);
    if (rc) fail_msg("eft train %s %s: exit %d:\n%s", config, args ? args : "", rc, err);
    eft_free(err);
}

static inline cJSON *tt_json(const char *path) {
    cJSON *j = eft_json_parse_file(path);
    if (!j) fail_msg("%s", eft_err_msg());
    return j;
}

/* dir/name/metrics.jsonl as a JSON array of its lines (owned). */
static inline cJSON *tt_metrics(const tt_env *e, const char *name) {
    char *path = eft_asprintf("%s/%s/metrics.jsonl", e->dir, name);
    char *text = eft_read_file(path, NULL);
    if (!text) fail_msg("%s", eft_err_msg());
    cJSON *all = cJSON_CreateArray();
    for (char *line = text, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        assert_non_null(end); /* every line is complete */
        cJSON *o = eft_json_parse(line, (size_t)(end - line), path);
        if (!o) fail_msg("%s", eft_err_msg());
        cJSON_AddItemToArray(all, o);
    }
    eft_free(text);
    eft_free(path);
    return all;
}

/* The entries of m that have `key` ("loss": training lines, "eval_loss": evaluations). */
static inline int tt_count(const cJSON *m, const char *key) {
    int n = 0;
    for (const cJSON *o = m->child; o; o = o->next) n += cJSON_HasObjectItem(o, key);
    return n;
}

/* Field `field` of the i-th entry that has `key` (the test fails when there is none). */
static inline double tt_get(const cJSON *m, const char *key, int i, const char *field) {
    for (const cJSON *o = m->child; o; o = o->next) {
        if (!cJSON_HasObjectItem(o, key) || i--) continue;
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, field);
        if (!cJSON_IsNumber(f)) fail_msg("metrics entry without a number \"%s\"", field);
        return f->valuedouble;
    }
    fail_msg("no metrics entry %d with \"%s\"", i, key);
    return NAN;
}

/* Every tensor of a safetensors file, as fp32 (integers converted). */
typedef struct tt_tensors {
    int n;
    char **names;   /* [n], sorted (owned) */
    int64_t *numel; /* [n] */
    float **v;      /* [n][numel] */
} tt_tensors;

static inline void tt_tensors_read(tt_tensors *t, const char *path) {
    st_archive *a;
    if (st_open(&a, path)) fail_msg("%s", eft_err_msg());
    t->n = (int)st_count(a);
    t->names = eft_calloc((size_t)t->n + 1, sizeof *t->names);
    t->numel = eft_calloc((size_t)t->n + 1, sizeof *t->numel);
    t->v = eft_calloc((size_t)t->n + 1, sizeof *t->v);
    for (int i = 0; i < t->n; i++) {
        const st_tensor *s = st_at(a, (size_t)i);
        t->names[i] = eft_strdup(s->name);
        t->numel[i] = s->numel;
        t->v[i] = eft_malloc((size_t)(s->numel ? s->numel : 1) * sizeof(float));
        if (s->dtype == ST_I64) { /* a step count */
            for (int64_t k = 0; k < s->numel; k++) {
                int64_t x;
                memcpy(&x, (const char *)s->data + k * 8, 8);
                t->v[i][k] = (float)x;
            }
        } else if (st_to_f32(s, t->v[i], (size_t)s->numel)) {
            fail_msg("%s", eft_err_msg());
        }
    }
    st_close(a);
}

static inline void tt_tensors_free(tt_tensors *t) {
    for (int i = 0; i < t->n; i++) eft_free(t->names[i]), eft_free(t->v[i]);
    eft_free(t->names), eft_free(t->numel), eft_free(t->v);
    memset(t, 0, sizeof *t);
}

/* The index of `name`, or -1. */
static inline int tt_find(const tt_tensors *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->names[i], name)) return i;
    return -1;
}

/* ||a - b||_2 over n values, in double. */
static inline double tt_dist(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s);
}

/* Whether two files hold the same bytes (both must exist). */
static inline bool tt_same_file(const char *p1, const char *p2) {
    size_t n1, n2;
    char *s1 = eft_read_file(p1, &n1), *s2 = eft_read_file(p2, &n2);
    if (!s1 || !s2) fail_msg("%s", eft_err_msg());
    bool same = n1 == n2 && !memcmp(s1, s2, n1);
    eft_free(s1), eft_free(s2);
    return same;
}

/* dir/name/file (owned). */
static inline char *tt_file(const tt_env *e, const char *name, const char *file) {
    return eft_asprintf("%s/%s/%s", e->dir, name, file);
}

#endif
