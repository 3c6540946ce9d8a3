/* test_ds_prepare.c: a config's data end to end: merging and shuffling (stable for a seed,
 * different for another), the length and label filters with their counts, excess_length_strategy
 * raise, the validation split, test_datasets, exact deduplication, and the prepared cache:
 * reused without tokenizing when nothing changed, rebuilt when the data, the tokenizer or a
 * format option changes, and rebuilt with a warning when its file is corrupt or truncated. */
#include "data/ds_test.h"

#include "data/ds_prepare.h"

#include <stdlib.h>
#include <unistd.h>

typedef struct fx {
    ds_fx *base;
    char *dir, *model, *cache;
    tok_tokenizer *tok;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    f->base = ds_fx_open("ds_prepare");
    f->dir = f->base->dir, f->model = f->base->model, f->tok = f->base->tok;
    f->cache = eft_path_join(f->dir, "prepared");
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    eft_free(f->cache);
    *state = f->base;
    free(f);
    return ds_fx_teardown(state);
}

/* Completion rows whose texts are `n` copies of letter c, for n in lens[]. */
static char *rows(const int *lens, int k, char c) {
    eft_buf b = {0};
    for (int i = 0; i < k; i++) {
        eft_buf_puts(&b, "{\"text\": \"");
        for (int j = 0; j < lens[i]; j++) eft_buf_putc(&b, c);
        eft_buf_puts(&b, "\"}\n");
    }
    return eft_buf_take(&b);
}

static int prepare(fx *f, const char *yaml, ds_prepared *p) {
    char *text = eft_asprintf("dataset_prepared_path: %s\n%s", f->cache, yaml);
    eft_config c;
    ds_test_config(&c, f->model, text);
    int rc = ds_prepare(&c, f->tok, p);
    cfg_free(&c);
    eft_free(text);
    return rc;
}

/* The texts' lengths (tokens - 2) and first letters of the set, as "a3 b5 ..." */
static void describe(const ds_samples *s, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    for (int64_t i = 0; i < s->n; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%c%lld", i ? " " : "",
                              (char)(s->ids[s->off[i] + 1] - T_BYTE0), (long long)ds_len(s, i) - 2);
}

static void test_merge_and_shuffle(void **state) {
    fx *f = *state;
    int la[] = {1, 2, 3, 4}, lb[] = {5, 6};
    char *a = rows(la, 4, 'a'), *b = rows(lb, 2, 'b');
    char *pa = ds_test_file(f->dir, "a.jsonl", a), *pb = ds_test_file(f->dir, "b.jsonl", b);
    char *yaml = eft_asprintf("datasets:\n  - {path: %s, type: completion}\n  - {path: %s, type: "
                              "completion}\nshuffle_merged_datasets: false\n",
                              pa, pb);
    ds_prepared p;
    char got[256], first[256], again[256];
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    describe(&p.train, got, sizeof got);
    assert_string_equal(got, "a1 a2 a3 a4 b5 b6"); /* concatenated in order */
    assert_int_equal(p.eval.n, 0);
    assert_int_equal(p.n_stats, 2);
    assert_int_equal(p.stats[1].rows, 2);
    ds_prepared_free(&p);
    eft_free(yaml);

    yaml = eft_asprintf("datasets:\n  - {path: %s, type: completion}\n  - {path: %s, type: "
                        "completion}\nseed: 5\n",
                        pa, pb);
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    describe(&p.train, first, sizeof first);
    assert_string_not_equal(first, "a1 a2 a3 a4 b5 b6");
    ds_prepared_free(&p);
    /* the same seed gives the same order (also when prepared again, not from the cache) */
    eft_remove_tree(f->cache);
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    assert_false(p.from_cache);
    describe(&p.train, again, sizeof again);
    assert_string_equal(again, first);
    ds_prepared_free(&p);
    eft_free(yaml);
    /* another seed, another order */
    yaml = eft_asprintf("datasets:\n  - {path: %s, type: completion}\n  - {path: %s, type: "
                        "completion}\nseed: 6\n",
                        pa, pb);
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    describe(&p.train, again, sizeof again);
    assert_string_not_equal(again, first);
    ds_prepared_free(&p);
    eft_free(yaml);
    eft_free(a), eft_free(b), eft_free(pa), eft_free(pb);
}

static void test_filters(void **state) {
    fx *f = *state;
    /* sequence_len 8: completion pieces of 8; lengths with <bos> and EOS are n + 2 */
    char *path = ds_test_file(f->dir, "f.jsonl",
                              "{\"instruction\": \"x\", \"output\": \"y\"}\n"
                              "{\"instruction\": \"long\", \"output\": \"y\"}\n"
                              "{\"instruction\": \"x\", \"output\": \"\"}\n");
    /* alpaca prompts are ~150 tokens: with sequence_len 400 all fit; the empty output has no
     * trained token */
    char *yaml = eft_asprintf("datasets: [{path: %s, type: alpaca}]\nsequence_len: 400\n"
                              "shuffle_merged_datasets: false\n",
                              path);
    ds_prepared p;
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    assert_int_equal(p.stats[0].rows, 3);
    assert_int_equal(p.stats[0].made, 3);
    assert_int_equal(p.stats[0].untrained, 1);
    assert_int_equal(p.stats[0].samples, 2);
    assert_int_equal(p.train.n, 2);
    int64_t len0 = ds_len(&p.train, 0), len1 = ds_len(&p.train, 1);
    ds_prepared_free(&p);
    eft_free(yaml);
    assert_true(len1 == len0 + 3);

    /* drop (default): the longer one is over len0 */
    yaml = eft_asprintf("datasets: [{path: %s, type: alpaca}]\nsequence_len: %lld\n"
                        "shuffle_merged_datasets: false\n",
                        path, (long long)len0);
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    assert_int_equal(p.stats[0].too_long, 1);
    assert_int_equal(p.stats[0].untrained, 1);
    assert_int_equal(p.train.n, 1);
    ds_prepared_free(&p);
    eft_free(yaml);
    /* truncate: cut to sequence_len; one token more than the long prompt keeps its first
     * response token (the EOS goes) */
    yaml = eft_asprintf("datasets: [{path: %s, type: alpaca}]\nsequence_len: %lld\n"
                        "excess_length_strategy: truncate\nshuffle_merged_datasets: false\n",
                        path, (long long)len0 + 2);
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    assert_int_equal(p.stats[0].truncated, 1);
    assert_int_equal(p.stats[0].too_long, 0);
    assert_int_equal(p.train.n, 2);
    assert_int_equal(ds_len(&p.train, 1), len0 + 2);
    assert_int_equal(ds_sample_trained(&p.train, 1), 1);
    ds_prepared_free(&p);
    eft_free(yaml);
    /* cut inside the prompt: nothing trained is left, so it is dropped (counted untrained) */
    yaml = eft_asprintf("datasets: [{path: %s, type: alpaca}]\nsequence_len: %lld\n"
                        "excess_length_strategy: truncate\nshuffle_merged_datasets: false\n",
                        path, (long long)len0 + 1);
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    assert_int_equal(p.stats[0].truncated, 0);
    assert_int_equal(p.stats[0].untrained, 2);
    assert_int_equal(p.train.n, 1);
    ds_prepared_free(&p);
    eft_free(yaml);
    /* raise: the error names the row */
    yaml = eft_asprintf("datasets: [{path: %s, type: alpaca}]\nsequence_len: %lld\n"
                        "excess_length_strategy: raise\n",
                        path, (long long)len0);
    assert_int_equal(prepare(f, yaml, &p), -1);
    assert_contains(eft_err_msg(), "f.jsonl:2: a sample of");
    assert_contains(eft_err_msg(), "is longer than sequence_len");
    assert_contains(eft_err_msg(), "excess_length_strategy is raise");
    eft_free(yaml);
    /* min_sample_len; and nothing left is an error */
    char *short_rows = ds_test_file(f->dir, "s.jsonl", "{\"text\": \"a\"}\n{\"text\": \"abcd\"}\n");
    yaml =
        eft_asprintf("datasets: [{path: %s, type: completion}]\nmin_sample_len: 4\n", short_rows);
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    assert_int_equal(p.stats[0].too_short, 1);
    assert_int_equal(p.train.n, 1);
    ds_prepared_free(&p);
    eft_free(yaml);
    yaml =
        eft_asprintf("datasets: [{path: %s, type: completion}]\nmin_sample_len: 40\n", short_rows);
    assert_int_equal(prepare(f, yaml, &p), -1);
    assert_contains(eft_err_msg(), "no training sample is left after filtering");
    eft_free(yaml);
    eft_free(short_rows);
    eft_free(path);
}

static void test_validation_split(void **state) {
    fx *f = *state;
    int lens[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    char *r = rows(lens, 10, 'v'), *path = ds_test_file(f->dir, "v.jsonl", r);
    char *yaml = eft_asprintf("datasets: [{path: %s, type: completion}]\nval_set_size: 0.25\n"
                              "shuffle_merged_datasets: false\n",
                              path);
    ds_prepared p;
    char got[256];
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    assert_int_equal(p.train.n, 7); /* ceil(2.5) = 3 held out: the last three */
    describe(&p.eval, got, sizeof got);
    assert_string_equal(got, "v8 v9 v10");
    ds_prepared_free(&p);
    eft_free(yaml);
    /* shuffled: the held-out set is fixed by the seed */
    yaml = eft_asprintf("datasets: [{path: %s, type: completion}]\nval_set_size: 0.25\nseed: 3\n",
                        path);
    char first[256];
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    describe(&p.eval, first, sizeof first);
    ds_prepared_free(&p);
    eft_remove_tree(f->cache);
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    describe(&p.eval, got, sizeof got);
    assert_string_equal(got, first);
    assert_int_equal(p.train.n + p.eval.n, 10);
    ds_prepared_free(&p);
    eft_free(yaml);
    /* test_datasets are the eval set */
    int tl[2] = {3, 4};
    char *t = rows(tl, 2, 't'), *tpath = ds_test_file(f->dir, "t.jsonl", t);
    yaml = eft_asprintf("datasets: [{path: %s, type: completion}]\ntest_datasets: [{path: %s, "
                        "type: completion}]\nshuffle_merged_datasets: false\n",
                        path, tpath);
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    assert_int_equal(p.train.n, 10);
    describe(&p.eval, got, sizeof got);
    assert_string_equal(got, "t3 t4");
    assert_true(p.stats[1].test);
    ds_prepared_free(&p);
    eft_free(yaml);
    /* a split that leaves nothing to train on */
    char *one = ds_test_file(f->dir, "one.jsonl", "{\"text\": \"abc\"}\n");
    yaml = eft_asprintf("datasets: [{path: %s, type: completion}]\nval_set_size: 0.5\n", one);
    assert_int_equal(prepare(f, yaml, &p), -1);
    assert_contains(eft_err_msg(), "val_set_size: 0.5 of 1 samples leaves no training sample");
    eft_free(yaml);
    eft_free(one), eft_free(t), eft_free(tpath), eft_free(r), eft_free(path);
}

static void test_dedup(void **state) {
    fx *f = *state;
    char *path = ds_test_file(f->dir, "d.jsonl",
                              "{\"text\": \"ab\"}\n{\"text\": \"cd\"}\n{\"text\": \"ab\"}\n");
    char *yaml = eft_asprintf("datasets: [{path: %s, type: completion}]\n"
                              "dataset_exact_deduplication: true\n",
                              path);
    ds_prepared p;
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    assert_int_equal(p.train.n, 2);
    ds_prepared_free(&p);
    eft_free(yaml);
    eft_free(path);
}

static void same_sets(const ds_samples *a, const ds_samples *b) {
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->n_tokens, b->n_tokens);
    for (int64_t i = 0; i <= a->n; i++) assert_int_equal(a->off[i], b->off[i]);
    for (int64_t t = 0; t < a->n_tokens; t++) {
        assert_int_equal(a->ids[t], b->ids[t]);
        assert_int_equal(ds_label(a, t), ds_label(b, t));
    }
}

static void test_cache(void **state) {
    fx *f = *state;
    eft_remove_tree(f->cache);
    char *data = ds_test_file(f->dir, "c.jsonl",
                              "{\"instruction\": \"a\", \"output\": \"b\"}\n"
                              "{\"instruction\": \"c\", \"output\": \"d\", \"body\": \"x\"}\n");
    char *yaml = eft_asprintf("datasets: [{path: %s, type: alpaca}]\nval_set_size: 0.5\n", data);
    ds_prepared p, q;
    if (prepare(f, yaml, &p)) fail_msg("%s", eft_err_msg());
    assert_false(p.from_cache);
    assert_int_equal(p.rows_tokenized, 2);
    assert_true(eft_is_file(p.cache_file));
    /* nothing changed: mapped, nothing tokenized, the same samples and counts */
    if (prepare(f, yaml, &q)) fail_msg("%s", eft_err_msg());
    assert_true(q.from_cache);
    assert_int_equal(q.rows_tokenized, 0);
    assert_string_equal(q.key, p.key);
    same_sets(&p.train, &q.train);
    same_sets(&p.eval, &q.eval);
    assert_int_equal(q.n_stats, 1);
    assert_int_equal(q.stats[0].samples, p.stats[0].samples);
    assert_string_equal(q.stats[0].name, p.stats[0].name);
    char *file = eft_strdup(p.cache_file);
    ds_prepared_free(&q);
    ds_prepared_free(&p);

    /* a corrupt payload byte: reported and rebuilt */
    FILE *fp = fopen(file, "r+b");
    assert_non_null(fp);
    fseek(fp, 200, SEEK_SET);
    int ch = fgetc(fp);
    fseek(fp, 200, SEEK_SET);
    fputc(ch ^ 0x5a, fp);
    fclose(fp);
    if (prepare(f, yaml, &q)) fail_msg("%s", eft_err_msg());
    assert_false(q.from_cache);
    assert_int_equal(q.rows_tokenized, 2);
    ds_prepared_free(&q);
    /* a truncated file: rebuilt */
    assert_int_equal(truncate(file, 100), 0);
    if (prepare(f, yaml, &q)) fail_msg("%s", eft_err_msg());
    assert_false(q.from_cache);
    ds_prepared_free(&q);
    if (prepare(f, yaml, &q)) fail_msg("%s", eft_err_msg());
    assert_true(q.from_cache); /* and the rebuilt file is good */
    char key0[33];
    memcpy(key0, q.key, 33);
    ds_prepared_free(&q);

    /* a changed data file, a changed tokenizer file, a changed option: new keys, rebuilt */
    test_write_file(data, "{\"instruction\": \"a\", \"output\": \"b\"}\n"
                          "{\"instruction\": \"c\", \"output\": \"D\"}\n");
    if (prepare(f, yaml, &q)) fail_msg("%s", eft_err_msg());
    assert_false(q.from_cache);
    assert_string_not_equal(q.key, key0);
    memcpy(key0, q.key, 33);
    ds_prepared_free(&q);
    char *tc = eft_path_join(f->model, "tokenizer_config.json");
    test_write_file(tc, "{\"eos_token\":\"<eos>\",\"pad_token\":\"<pad>\",\"bos_token\":\"<bos>\","
                        "\"model_max_length\":8192}");
    if (prepare(f, yaml, &q)) fail_msg("%s", eft_err_msg());
    assert_false(q.from_cache);
    assert_string_not_equal(q.key, key0);
    memcpy(key0, q.key, 33);
    ds_prepared_free(&q);
    eft_free(yaml);
    yaml = eft_asprintf("datasets: [{path: %s, type: alpaca}]\nval_set_size: 0.5\n"
                        "train_on_inputs: true\n",
                        data);
    if (prepare(f, yaml, &q)) fail_msg("%s", eft_err_msg());
    assert_false(q.from_cache);
    assert_string_not_equal(q.key, key0);
    ds_prepared_free(&q);
    eft_free(yaml);
    yaml = eft_asprintf("datasets: [{path: %s, type: alpaca, split: \"train[:1]\"}]\n", data);
    if (prepare(f, yaml, &q)) fail_msg("%s", eft_err_msg());
    assert_false(q.from_cache);
    assert_int_equal(q.train.n, 1);
    ds_prepared_free(&q);
    eft_free(yaml);
    eft_free(tc);
    eft_free(file);
    eft_free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_and_shuffle),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_validation_split),
        cmocka_unit_test(test_dedup),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
