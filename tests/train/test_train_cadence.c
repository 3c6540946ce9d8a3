/* test_train_cadence.c: the batch, epoch, evaluation, save, logging and packing keys of
 * `eft train`, each checked against what it must change in the run (test_train_keys.c has the
 * adapter, optimizer and schedule keys).
 *
 * The runs keep rows.jsonl in order (curriculum_sampling, no dataset shuffle), so the test knows
 * every micro-batch: c[i], the trained labels of row i, is what eft's cumulative
 * trainable_tokens adds for it, and n[i], its labels after the shift, what an evaluation counts.
 *
 *   micro_batch_size, gradient_accumulation_steps, num_epochs, max_steps
 *                        the number of training lines, each step's epoch and token count
 *   logging_steps        which steps log, and the logged loss being the window's mean
 *   val_set_size, test_datasets, eval_steps, evals_per_epoch
 *                        which steps evaluate, and over how many tokens
 *   sample_packing       fewer micro-batches, the first label of each packed document not
 *                        trained, and the same eval_loss as without packing (eft's eval_loss is
 *                        the token mean over the eval set, which packing does not change)
 *   save_steps, saves_per_epoch, save_total_limit, output_dir
 *                        the checkpoint folders written and kept
 *   loss_normalization   an unknown value is refused (test_train_reference.c checks both modes)
 */
#include "tt.h"

#include <dirent.h>
#include <stdio.h>

static const char *base_keys = "sequence_len: 64\n"
                               "sample_packing: false\n"
                               "curriculum_sampling: true\n"
                               "shuffle_merged_datasets: false\n"
                               "adapter: lora\n"
                               "lora_r: 2\n"
                               "lora_alpha: 4\n"
                               "lora_target_linear: true\n"
                               "micro_batch_size: 1\n"
                               "gradient_accumulation_steps: 1\n"
                               "num_epochs: 1\n"
                               "learning_rate: 0.01\n"
                               "lr_scheduler: constant\n"
                               "logging_steps: 1\n"
                               "seed: 7\n";

enum { ROWS = 20 };

typedef struct ct {
    tt_env e;
    char *cfg;
    int64_t c[ROWS], n[ROWS]; /* trained labels of each row, unshifted and shifted */
    bool first[ROWS];         /* the row's first label is trained */
} ct;

/* Trained labels of a JSONL file's rows: unshifted c[i], shifted n[i]; returns the row count. */
static int count_rows(const char *path, int64_t *c, int64_t *n, bool *first, int max) {
    char *text = eft_read_file(path, NULL);
    assert_non_null(text);
    int rows = 0;
    for (char *line = text, *end; (end = strchr(line, '\n')); line = end + 1, rows++) {
        assert_true(rows < max);
        cJSON *o = eft_json_parse(line, (size_t)(end - line), path);
        assert_non_null(o);
        const cJSON *l = cJSON_GetObjectItem(o, "labels");
        c[rows] = n[rows] = 0;
        int k = 0;
        for (const cJSON *x = l->child; x; x = x->next, k++) {
            bool trained = x->valueint != -100;
            c[rows] += trained;
            n[rows] += trained && k > 0;
            if (k == 0 && first) first[rows] = trained;
        }
        cJSON_Delete(o);
    }
    eft_free(text);
    return rows;
}

static void ct_init(ct *t, const char *name) {
    tt_env_init(&t->e, name, 3);
    t->cfg = tt_config(&t->e, "base", base_keys);
    assert_int_equal(count_rows(TT_ROWS, t->c, t->n, t->first, ROWS), ROWS);
}

static void ct_free(ct *t) {
    eft_free(t->cfg);
    tt_env_free(&t->e);
}

static void run(ct *t, const char *name, const char *args) {
    char *a = eft_asprintf("--output_dir %s/%s %s", t->e.dir, name, args);
    tt_train_ok(t->cfg, a);
    eft_free(a);
}

static int64_t sum(const int64_t *v, int from, int to) {
    int64_t s = 0;
    for (int i = from; i < to; i++) s += v[i];
    return s;
}

/* The training lines of run `name`: T of them, and after step k + 1 the run has consumed
 * rows_done[k] rows since its start (over epochs); `scale` turns that into the logged epoch. */
static void check_steps(ct *t, const char *name, int T, const int *rows_done, double scale) {
    cJSON *m = tt_metrics(&t->e, name);
    assert_int_equal(tt_count(m, "loss"), T);
    for (int k = 0; k < T; k++) {
        assert_int_equal((int)tt_get(m, "loss", k, "step"), k + 1);
        int done = rows_done[k]; /* rows consumed since the start, over epochs */
        int64_t tokens = (done / ROWS) * sum(t->c, 0, ROWS) + sum(t->c, 0, done % ROWS);
        assert_int_equal((int64_t)tt_get(m, "loss", k, "trainable_tokens"), tokens);
        assert_close(tt_get(m, "loss", k, "epoch"), done * scale, 1e-12);
    }
    cJSON_Delete(m);
}

static void test_batches(void **state) {
    ct t;
    ct_init(&t, "cadence_batches");
    int done[32];
    run(&t, "b1", "");
    for (int k = 0; k < 20; k++) done[k] = k + 1;
    check_steps(&t, "b1", 20, done, 1.0 / ROWS);

    run(&t, "mbs2", "--micro_batch_size 2");
    for (int k = 0; k < 10; k++) done[k] = 2 * (k + 1);
    check_steps(&t, "mbs2", 10, done, 1.0 / ROWS);

    /* 20 micro-batches in updates of 3: seven updates, the last one of 2 */
    run(&t, "gas3", "--gradient_accumulation_steps 3");
    for (int k = 0; k < 7; k++) done[k] = k < 6 ? 3 * (k + 1) : 20;
    check_steps(&t, "gas3", 7, done, 1.0 / ROWS);

    run(&t, "e2", "--micro_batch_size 4 --num_epochs 2");
    for (int k = 0; k < 10; k++) done[k] = 4 * (k + 1);
    check_steps(&t, "e2", 10, done, 1.0 / ROWS);

    run(&t, "max3", "--max_steps 3");
    for (int k = 0; k < 3; k++) done[k] = k + 1;
    check_steps(&t, "max3", 3, done, 1.0 / ROWS);
    char *p = tt_file(&t.e, "max3", "checkpoint-3/trainer_state.json");
    cJSON *ts = tt_json(p);
    assert_int_equal(cJSON_GetObjectItem(ts, "max_steps")->valueint, 3);
    cJSON_Delete(ts), eft_free(p);

    /* max_steps beyond one epoch runs into the next */
    run(&t, "max25", "--max_steps 25");
    for (int k = 0; k < 25; k++) done[k] = k + 1;
    check_steps(&t, "max25", 25, done, 1.0 / ROWS);
    ct_free(&t);
}

static void test_logging(void **state) {
    ct t;
    ct_init(&t, "cadence_logging");
    run(&t, "ls1", "--max_steps 6");
    run(&t, "ls3", "--max_steps 6 --logging_steps 3");
    cJSON *a = tt_metrics(&t.e, "ls1"), *b = tt_metrics(&t.e, "ls3");
    assert_int_equal(tt_count(b, "loss"), 2);
    for (int w = 0; w < 2; w++) {
        assert_int_equal((int)tt_get(b, "loss", w, "step"), 3 * (w + 1));
        double mean = 0;
        for (int k = 3 * w; k < 3 * w + 3; k++) mean += tt_get(a, "loss", k, "loss") / 3;
        assert_close(tt_get(b, "loss", w, "loss"), mean, 1e-6);
        int last = 3 * w + 2; /* grad_norm and learning_rate: of the window's last update */
        assert_true(tt_get(b, "loss", w, "grad_norm") == tt_get(a, "loss", last, "grad_norm"));
        assert_true(tt_get(b, "loss", w, "learning_rate") ==
                    tt_get(a, "loss", last, "learning_rate"));
    }
    cJSON_Delete(a), cJSON_Delete(b);
    ct_free(&t);
}

/* The steps of run `name`'s evaluation lines, each over `tokens` tokens. */
static void check_evals(ct *t, const char *name, const int *steps, int n, int64_t tokens) {
    cJSON *m = tt_metrics(&t->e, name);
    assert_int_equal(tt_count(m, "eval_loss"), n);
    for (int i = 0; i < n; i++) {
        assert_int_equal((int)tt_get(m, "eval_loss", i, "step"), steps[i]);
        assert_int_equal((int64_t)tt_get(m, "eval_loss", i, "eval_tokens"), tokens);
        assert_true(isfinite(tt_get(m, "eval_loss", i, "eval_loss")));
    }
    cJSON_Delete(m);
}

static void test_eval(void **state) {
    ct t;
    ct_init(&t, "cadence_eval");
    /* val_set_size 0.2: the last 4 rows evaluate, 16 train */
    run(&t, "val", "--val_set_size 0.2 --eval_steps 8");
    check_evals(&t, "val", (int[]){0, 8, 16}, 3, sum(t.n, 16, 20));
    cJSON *m = tt_metrics(&t.e, "val");
    assert_int_equal(tt_count(m, "loss"), 16);
    assert_int_equal((int64_t)tt_get(m, "loss", 15, "trainable_tokens"), sum(t.c, 0, 16));
    cJSON_Delete(m);

    int64_t ec[8], en[8];
    int eval_rows = count_rows(TT_FIXTURES "/eval_rows.jsonl", ec, en, NULL, 8);
    const char *test_ds =
        "--max_steps 8 --test_datasets '[{path: " TT_FIXTURES "/eval_rows.jsonl}]'";
    char *args = eft_asprintf("%s --evals_per_epoch 2", test_ds);
    run(&t, "per_epoch", args); /* every ceil(8 / 2) = 4 steps */
    check_evals(&t, "per_epoch", (int[]){0, 4, 8}, 3, sum(en, 0, eval_rows));
    eft_free(args);
    args = eft_asprintf("%s --eval_steps 3", test_ds);
    run(&t, "steps3", args); /* and after the last update */
    check_evals(&t, "steps3", (int[]){0, 3, 6, 8}, 4, sum(en, 0, eval_rows));
    eft_free(args);

    /* The same eval_loss with and without packing: rows.jsonl as the eval set (three rows train
     * their first label, which packing masks: that label is no target either way). */
    const char *rows_eval = "--max_steps 1 --eval_steps 1 --test_datasets '[{path: " TT_ROWS "}]'";
    run(&t, "unpacked", rows_eval);
    args = eft_asprintf("%s --sample_packing true", rows_eval);
    run(&t, "packed", args);
    eft_free(args);
    cJSON *u = tt_metrics(&t.e, "unpacked"), *p = tt_metrics(&t.e, "packed");
    assert_int_equal((int64_t)tt_get(u, "eval_loss", 0, "eval_tokens"), sum(t.n, 0, ROWS));
    assert_int_equal((int64_t)tt_get(p, "eval_loss", 0, "eval_tokens"), sum(t.n, 0, ROWS));
    double lp = tt_get(p, "eval_loss", 0, "eval_loss"), lu = tt_get(u, "eval_loss", 0, "eval_loss");
    print_message("eval_loss packed %.9g, unpacked %.9g\n", lp, lu);
    assert_close(lp, lu, 2e-6);
    cJSON_Delete(u), cJSON_Delete(p);
    ct_free(&t);
}

static void test_packing(void **state) {
    ct t;
    ct_init(&t, "cadence_packing");
    run(&t, "off", "");
    run(&t, "on", "--sample_packing true");
    cJSON *off = tt_metrics(&t.e, "off"), *on = tt_metrics(&t.e, "on");
    int T = tt_count(on, "loss");
    int64_t tokens = 0, firsts = 0;
    for (int i = 0; i < ROWS; i++) firsts += t.first[i];
    assert_true(firsts > 0);
    for (int i = 0; i < ROWS; i++) tokens += t.c[i];
    assert_int_equal(tt_count(off, "loss"), ROWS);
    /* 499 tokens in bins of 64: at least 8 micro-batches, and fewer than the 20 rows */
    assert_true(T >= 8 && T < ROWS);
    assert_int_equal((int64_t)tt_get(off, "loss", ROWS - 1, "trainable_tokens"), tokens);
    assert_int_equal((int64_t)tt_get(on, "loss", T - 1, "trainable_tokens"), tokens - firsts);
    assert_close(tt_get(on, "loss", T - 1, "epoch"), 1.0, 1e-12);
    cJSON_Delete(off), cJSON_Delete(on);
    ct_free(&t);
}

/* The checkpoint-<step> folders of run `name` are exactly `steps`. */
static void check_checkpoints(ct *t, const char *name, const int *steps, int n) {
    char *dir = tt_path(&t->e, name);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int found = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (strncmp(ent->d_name, "checkpoint-", 11)) continue;
        int s = atoi(ent->d_name + 11), i = 0;
        while (i < n && steps[i] != s) i++;
        if (i == n) fail_msg("%s: unexpected %s", name, ent->d_name);
        found++;
    }
    closedir(d);
    assert_int_equal(found, n);
    eft_free(dir);
}

static void test_saves(void **state) {
    ct t;
    ct_init(&t, "cadence_saves");
    run(&t, "default", "--max_steps 8"); /* the epoch strategy: the end of the run */
    check_checkpoints(&t, "default", (int[]){8}, 1);
    run(&t, "steps3", "--max_steps 8 --save_steps 3");
    check_checkpoints(&t, "steps3", (int[]){3, 6, 8}, 3);
    run(&t, "per_epoch", "--max_steps 8 --saves_per_epoch 2"); /* every ceil(8 / 2) = 4 */
    check_checkpoints(&t, "per_epoch", (int[]){4, 8}, 2);
    run(&t, "limit", "--max_steps 8 --save_steps 2 --save_total_limit 2");
    check_checkpoints(&t, "limit", (int[]){6, 8}, 2);

    /* output_dir holds what the run writes, and nothing is written beside it */
    static const char *files[] = {
        "adapter_model.safetensors", "adapter_config.json", "config.json", "tokenizer.json",
        "tokenizer_config.json",     "metrics.jsonl"};
    for (size_t i = 0; i < EFT_ARRAY_LEN(files); i++) {
        char *p = tt_file(&t.e, "limit", files[i]);
        if (!eft_is_file(p)) fail_msg("%s is missing", p);
        eft_free(p);
    }
    char *stray = tt_path(&t.e, "adapter_model.safetensors");
    assert_false(eft_path_exists(stray));
    eft_free(stray);

    char *err = NULL;
    char *a = eft_asprintf("--output_dir %s/bad --loss_normalization sequences", t.e.dir);
    assert_int_equal(tt_train(t.cfg, a, &err), 1);
    assert_contains(err, "--loss-normalization: unknown value \"sequences\"");
    eft_free(err), eft_free(a);
    ct_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches), cmocka_unit_test(test_logging), cmocka_unit_test(test_eval),
        cmocka_unit_test(test_packing), cmocka_unit_test(test_saves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
