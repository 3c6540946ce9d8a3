/* test_train_output.c: what a run leaves behind, and how it stops when training diverges.
 *
 *   output_dir   adapter_model.safetensors + adapter_config.json (LoRA) or model.safetensors
 *                (full fine-tuning), config.json and the tokenizer files as given, metrics.jsonl;
 *                no temporary checkpoint folder left over
 *   metrics      training lines with step, epoch, loss, grad_norm, learning_rate,
 *                tokens_per_second, peak_memory_gb; eval lines with step, epoch, eval_loss,
 *                eval_tokens (design.md section 6)
 *   checkpoints  everything a resume reads; trainer_state.json parses, has global_step,
 *                max_steps and log_history (the metrics lines up to that step), keys sorted
 *   evaluate     `eft evaluate` with the saved adapter gives the run's last eval_loss
 *   divergence   a learning rate of 1e30 makes step 2's loss NaN: exit status 1, a message
 *                naming the step and the last checkpoint, which is kept with finite values; no
 *                final adapter, no later checkpoint; without a checkpoint the message says so
 */
#include "tt.h"

#include <dirent.h>
#include <stdio.h>

static const char *keys = "sequence_len: 64\n"
                          "sample_packing: true\n"
                          "adapter: lora\n"
                          "lora_r: 2\n"
                          "lora_alpha: 4\n"
                          "lora_target_linear: true\n"
                          "micro_batch_size: 1\n"
                          "gradient_accumulation_steps: 1\n"
                          "num_epochs: 1\n"
                          "max_steps: 4\n"
                          "val_set_size: 0.2\n"
                          "eval_steps: 2\n"
                          "save_steps: 2\n"
                          "learning_rate: 0.01\n"
                          "logging_steps: 1\n"
                          "seed: 9\n";

static void assert_file(const tt_env *e, const char *name, const char *file) {
    char *p = tt_file(e, name, file);
    if (!eft_is_file(p)) fail_msg("%s is missing", p);
    eft_free(p);
}

static void assert_no_file(const tt_env *e, const char *name, const char *file) {
    char *p = tt_file(e, name, file);
    if (eft_path_exists(p)) fail_msg("%s should not exist", p);
    eft_free(p);
}

/* Every key of the entry is one of `allowed`, and every one of `required` is there. */
static void check_entry(const cJSON *o, const char *const *required, int n_required,
                        const char *const *allowed, int n_allowed) {
    for (int i = 0; i < n_required; i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, required[i]);
        if (!cJSON_IsNumber(f)) fail_msg("a metrics line lacks the number %s", required[i]);
        if (!isfinite(f->valuedouble)) fail_msg("%s is not finite", required[i]);
    }
    for (const cJSON *f = o->child; f; f = f->next) {
        int i = 0;
        while (i < n_allowed && strcmp(allowed[i], f->string)) i++;
        if (i == n_allowed) fail_msg("unexpected metrics key %s", f->string);
    }
}

static void test_lora_output(void **state) {
    tt_env e;
    tt_env_init(&e, "train_output", 3);
    char *cfg = tt_config(&e, "out", keys);
    tt_train_ok(cfg, NULL);
    eft_free(cfg);

    /* output_dir */
    static const char *files[] = {
        "adapter_model.safetensors", "adapter_config.json", "config.json", "tokenizer.json",
        "tokenizer_config.json",     "metrics.jsonl"};
    for (size_t i = 0; i < EFT_ARRAY_LEN(files); i++) assert_file(&e, "out", files[i]);
    assert_no_file(&e, "out", "model.safetensors");
    char *a = tt_file(&e, "out", "config.json"), *b = eft_path_join(e.model, "config.json");
    assert_true(tt_same_file(a, b));
    eft_free(a), eft_free(b);
    a = tt_file(&e, "out", "tokenizer.json");
    assert_true(tt_same_file(a, EFT_SOURCE_DIR "/examples/demo/tokenizer.json"));
    eft_free(a);
    char *dir = tt_path(&e, "out");
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *ent; (ent = readdir(d));)
        if (strstr(ent->d_name, ".tmp")) fail_msg("left over: %s", ent->d_name);
    closedir(d);

    /* metrics.jsonl */
    cJSON *m = tt_metrics(&e, "out");
    static const char *train_req[] = {"step",          "epoch",         "loss",
                                      "grad_norm",     "learning_rate", "tokens_per_second",
                                      "peak_memory_gb"};
    static const char *train_ok[] = {"step",           "epoch",           "loss",
                                     "grad_norm",      "learning_rate",   "tokens_per_second",
                                     "peak_memory_gb", "trainable_tokens"};
    static const char *eval_req[] = {"step", "epoch", "eval_loss", "eval_tokens"};
    static const char *eval_ok[] = {"step", "epoch", "eval_loss", "eval_tokens", "eval_runtime"};
    assert_int_equal(tt_count(m, "loss"), 4);
    assert_int_equal(tt_count(m, "eval_loss"), 3); /* steps 0, 2, 4 */
    for (const cJSON *o = m->child; o; o = o->next) {
        if (cJSON_HasObjectItem(o, "loss")) {
            check_entry(o, train_req, EFT_ARRAY_LEN(train_req), train_ok, EFT_ARRAY_LEN(train_ok));
            assert_true(cJSON_GetObjectItem(o, "tokens_per_second")->valuedouble > 0);
            assert_true(cJSON_GetObjectItem(o, "peak_memory_gb")->valuedouble > 0);
        } else {
            check_entry(o, eval_req, EFT_ARRAY_LEN(eval_req), eval_ok, EFT_ARRAY_LEN(eval_ok));
            assert_true(cJSON_GetObjectItem(o, "eval_tokens")->valueint > 0);
        }
    }

    /* checkpoint-2 */
    static const char *ckpt[] = {"adapter_model.safetensors", "adapter_config.json",
                                 "optimizer.safetensors", "trainer_state.json", "eft_state.json"};
    for (size_t i = 0; i < EFT_ARRAY_LEN(ckpt); i++) {
        char *f = eft_asprintf("checkpoint-2/%s", ckpt[i]);
        assert_file(&e, "out", f);
        eft_free(f);
    }
    char *p = tt_file(&e, "out", "checkpoint-2/trainer_state.json");
    cJSON *ts = tt_json(p);
    eft_free(p);
    assert_int_equal(cJSON_GetObjectItem(ts, "global_step")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(ts, "max_steps")->valueint, 4);
    for (const cJSON *k = ts->child; k && k->next; k = k->next)
        assert_true(strcmp(k->string, k->next->string) < 0);
    const cJSON *hist = cJSON_GetObjectItem(ts, "log_history");
    assert_true(cJSON_IsArray(hist));
    /* the metrics lines up to step 2: eval 0, train 1, train 2, eval 2 */
    assert_int_equal(cJSON_GetArraySize(hist), 4);
    const cJSON *o = m->child;
    for (const cJSON *h = hist->child; h; h = h->next, o = o->next) {
        const char *key = cJSON_HasObjectItem(o, "loss") ? "loss" : "eval_loss";
        assert_true(cJSON_GetObjectItem(h, "step")->valuedouble ==
                    cJSON_GetObjectItem(o, "step")->valuedouble);
        assert_true(cJSON_GetObjectItem(h, key)->valuedouble ==
                    cJSON_GetObjectItem(o, key)->valuedouble);
    }
    cJSON_Delete(ts);

    /* eft evaluate with the saved adapter gives the run's last eval_loss, over the same tokens */
    char *keys2 = eft_asprintf("%slora_model_dir: %s\n", keys, dir);
    cfg = tt_config(&e, "evaluate", keys2);
    char *cmd = eft_asprintf("evaluate %s", cfg), *out = NULL, *err = NULL;
    if (test_run_eft(cmd, &out, &err)) fail_msg("eft %s: %s", cmd, err);
    cJSON *res = eft_json_parse(out, strlen(out), "eft evaluate's output");
    assert_non_null(res);
    assert_close(cJSON_GetObjectItem(res, "eval_loss")->valuedouble,
                 tt_get(m, "eval_loss", 2, "eval_loss"), 1e-7);
    assert_int_equal(cJSON_GetObjectItem(res, "eval_tokens")->valueint,
                     (int)tt_get(m, "eval_loss", 2, "eval_tokens"));
    cJSON_Delete(res), eft_free(out), eft_free(err), eft_free(cmd), eft_free(cfg), eft_free(keys2);
    cJSON_Delete(m);
    eft_free(dir);
    tt_env_free(&e);
}

static void test_full_output(void **state) {
    tt_env e;
    tt_env_init(&e, "train_output_full", 3);
    char *cfg = tt_config(&e, "out",
                          "sequence_len: 64\n"
                          "micro_batch_size: 2\n"
                          "num_epochs: 1\n"
                          "max_steps: 2\n"
                          "learning_rate: 0.001\n"
                          "seed: 9\n");
    tt_train_ok(cfg, NULL);
    eft_free(cfg);
    assert_file(&e, "out", "model.safetensors");
    assert_file(&e, "out", "config.json");
    assert_file(&e, "out", "tokenizer.json");
    assert_no_file(&e, "out", "adapter_model.safetensors");
    assert_no_file(&e, "out", "adapter_config.json");
    /* every weight of the checkpoint, trained: the embedding moved */
    tt_tensors a, b;
    char *p = tt_file(&e, "out", "model.safetensors"),
         *q = eft_path_join(e.model, "model.safetensors");
    tt_tensors_read(&a, p);
    tt_tensors_read(&b, q);
    assert_int_equal(a.n, b.n);
    int emb = tt_find(&a, "model.language_model.embed_tokens.weight");
    assert_true(emb >= 0);
    assert_true(tt_dist(a.v[emb], b.v[tt_find(&b, a.names[emb])], a.numel[emb]) > 0);
    tt_tensors_free(&a), tt_tensors_free(&b);
    eft_free(p), eft_free(q);
    tt_env_free(&e);
}

static void test_divergence(void **state) {
    tt_env e;
    tt_env_init(&e, "train_diverge", 3);
    const char *huge = "--learning_rate 1e30 --lr_scheduler constant --max_steps 4 "
                       "--val_set_size 0 --eval_steps '' --save_steps 1";
    char *cfg = tt_config(&e, "out", keys), *err = NULL;
    assert_int_equal(tt_train(cfg, huge, &err), 1);
    assert_contains(err, "training diverged at step 2: the loss of micro-batch 0 is NaN");
    assert_contains(err, "out/checkpoint-1");
    eft_free(err);
    assert_file(&e, "out", "checkpoint-1/adapter_model.safetensors");
    assert_no_file(&e, "out", "checkpoint-2");
    assert_no_file(&e, "out", "adapter_model.safetensors");
    tt_tensors t;
    char *p = tt_file(&e, "out", "checkpoint-1/adapter_model.safetensors");
    tt_tensors_read(&t, p);
    for (int i = 0; i < t.n; i++)
        for (int64_t k = 0; k < t.numel[i]; k++) assert_true(isfinite(t.v[i][k]));
    tt_tensors_free(&t);
    eft_free(p);
    cJSON *m = tt_metrics(&e, "out");
    assert_int_equal(cJSON_GetArraySize(m), 1); /* step 1 only */
    assert_true(isfinite(tt_get(m, "loss", 0, "loss")));
    cJSON_Delete(m);

    /* before any checkpoint */
    char *args = eft_asprintf("%s --save_steps 10 --output_dir %s/early", huge, e.dir);
    assert_int_equal(tt_train(cfg, args, &err), 1);
    assert_contains(err, "training diverged at step 2");
    assert_contains(err, "before any checkpoint was written");
    eft_free(err), eft_free(args), eft_free(cfg);
    tt_env_free(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lora_output),
        cmocka_unit_test(test_full_output),
        cmocka_unit_test(test_divergence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
