/* test_train_resume.c: a run that stops and resumes ends bit-exactly where an uninterrupted one
 * ends: the same adapter (or weights) bytes, the same metrics lines, the same train_loss.
 *
 * The LoRA run packs samples (random bins per epoch), accumulates two micro-batches per update,
 * warms up, decays, clips, evaluates every 8 steps, logs every 3 (so checkpoint-10 holds an open
 * loss window) and runs 10 epochs (40 updates), so a resume must restore the data order of a
 * later epoch, the schedule, AdamW's moments and step counts, the loss window and the token
 * counters. It is stopped three ways:
 *   - resume_from_checkpoint: a new output_dir continues from checkpoint-10 of the first run;
 *   - SIGTERM once checkpoint-10 exists: eft finishes the update in flight, writes a checkpoint,
 *     says how to resume and exits 0 without a final adapter; the same command with
 *     auto_resume_from_checkpoints then finds the newest checkpoint and finishes the run;
 *   - full fine-tuning (every weight, fp32 masters in the checkpoint), with two OpenMP threads.
 * Metrics lines are compared field by field, except the timings (tokens_per_second,
 * peak_memory_gb, eval_runtime), which no two runs share. Later checkpoints are compared too:
 * resuming must also reproduce what the run saves.
 */
#include "tt.h"

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *lora_keys = "adapter: lora\n"
                               "lora_r: 2\n"
                               "lora_alpha: 4\n"
                               "lora_target_linear: true\n"
                               "sample_packing: true\n"
                               "sequence_len: 64\n"
                               "micro_batch_size: 1\n"
                               "gradient_accumulation_steps: 2\n"
                               "num_epochs: 10\n"
                               "val_set_size: 0.1\n"
                               "eval_steps: 8\n"
                               "save_steps: 10\n"
                               "logging_steps: 3\n"
                               "learning_rate: 0.01\n"
                               "lr_scheduler: cosine\n"
                               "warmup_steps: 2\n"
                               "weight_decay: 0.1\n"
                               "max_grad_norm: 1.0\n"
                               "seed: 11\n";

static bool timing_field(const char *key) {
    return !strcmp(key, "tokens_per_second") || !strcmp(key, "peak_memory_gb") ||
           !strcmp(key, "eval_runtime");
}

/* Two metrics.jsonl: the same lines, every field equal but the timings. */
static void assert_same_metrics(const tt_env *e, const char *a, const char *b) {
    cJSON *ma = tt_metrics(e, a), *mb = tt_metrics(e, b);
    assert_int_equal(cJSON_GetArraySize(ma), cJSON_GetArraySize(mb));
    assert_true(cJSON_GetArraySize(ma) > 0);
    int line = 1;
    for (const cJSON *x = ma->child, *y = mb->child; x; x = x->next, y = y->next, line++) {
        assert_int_equal(cJSON_GetArraySize(x), cJSON_GetArraySize(y));
        for (const cJSON *f = x->child; f; f = f->next) {
            const cJSON *g = cJSON_GetObjectItemCaseSensitive(y, f->string);
            if (!g) fail_msg("%s/metrics.jsonl:%d: %s missing in %s", a, line, f->string, b);
            if (timing_field(f->string)) continue;
            if (f->valuedouble != g->valuedouble)
                fail_msg("metrics.jsonl:%d: %s is %.17g in %s, %.17g in %s", line, f->string,
                         f->valuedouble, a, g->valuedouble, b);
        }
    }
    cJSON_Delete(ma), cJSON_Delete(mb);
}

static void assert_same(const tt_env *e, const char *a, const char *b, const char *file) {
    char *pa = tt_file(e, a, file), *pb = tt_file(e, b, file);
    if (!tt_same_file(pa, pb)) fail_msg("%s and %s differ", pa, pb);
    eft_free(pa), eft_free(pb);
}

/* The train_loss of eft's closing line ("done: 40 steps, train_loss 5.9209, ..."), as printed. */
static char *train_loss(const char *err) {
    const char *p = strstr(err, "train_loss ");
    if (!p) fail_msg("no train_loss in:\n%s", err);
    return eft_strndup(p, strcspn(p, ","));
}

static bool exists(const tt_env *e, const char *name, const char *file) {
    char *p = tt_file(e, name, file);
    bool ok = eft_path_exists(p);
    eft_free(p);
    return ok;
}

/* Runs `eft train config` and sends `sig` as soon as out/checkpoint-10 exists. Returns the wait
 * status; stderr in *err (owned). */
static int train_and_signal(const tt_env *e, const char *config, const char *out, int sig,
                            char **err) {
    char *err_path = eft_asprintf("%s/%s.stderr", e->dir, out);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen(err_path, "w", stderr)) _exit(126);
        execl(EFT_BINARY, EFT_BINARY, "train", config, (char *)NULL);
        _exit(127);
    }
    char *ckpt = tt_file(e, out, "checkpoint-10");
    int status;
    for (;;) {
        if (eft_is_dir(ckpt)) {
            kill(pid, sig);
            assert_int_equal(waitpid(pid, &status, 0), pid);
            break;
        }
        if (waitpid(pid, &status, WNOHANG) == pid) break; /* ended before checkpoint-10 */
        usleep(200);
    }
    eft_free(ckpt);
    *err = eft_read_file(err_path, NULL);
    assert_non_null(*err);
    eft_free(err_path);
    return status;
}

/* Interrupts run `out` of `config` with `sig` after checkpoint-10; a loaded machine may let the
 * run end before the signal lands, and then it is tried again. Returns eft's stderr (owned). */
static char *interrupt(const tt_env *e, const char *config, const char *out, int sig) {
    for (int tries = 0; tries < 5; tries++) {
        char *dir = tt_path(e, out);
        eft_remove_tree(dir);
        eft_free(dir);
        char *err = NULL;
        int status = train_and_signal(e, config, out, sig, &err);
        bool finished = exists(e, out, "adapter_model.safetensors");
        if (sig == SIGKILL && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && !finished)
            return err;
        if (sig != SIGKILL) {
            if (!WIFEXITED(status) || WEXITSTATUS(status))
                fail_msg("eft did not exit 0 after signal %d:\n%s", sig, err);
            if (!finished) return err;
        }
        eft_free(err);
    }
    fail_msg("five runs of %s ended before the signal", out);
    return NULL;
}

/* After a graceful stop (SIGINT or SIGTERM): the message, no final adapter, and a checkpoint of
 * the step the run stopped at. Returns that checkpoint's path as the message gives it (owned). */
static char *check_stopped(const tt_env *e, const char *out, const char *err) {
    const char *stop = strstr(err, "stopped by a signal after step ");
    if (!stop) fail_msg("no stop message in:\n%s", err);
    int last = atoi(stop + strlen("stopped by a signal after step "));
    assert_true(last >= 10 && last < 40);
    assert_false(exists(e, out, "checkpoint-40"));
    char *name = eft_asprintf("checkpoint-%d", last);
    assert_true(exists(e, out, name));
    print_message("%s: stopped after step %d\n", out, last);
    eft_free(name);
    const char *flag = "resume with --resume_from_checkpoint ";
    const char *p = strstr(err, flag);
    assert_non_null(p);
    p += strlen(flag);
    return eft_strndup(p, strcspn(p, " \n"));
}

static void test_lora_resume(void **state) {
    tt_env e;
    tt_env_init(&e, "train_resume", 3);
    char *cfg = tt_config(&e, "full", lora_keys);
    char *err = NULL;
    assert_int_equal(tt_train(cfg, NULL, &err), 0);
    char *want_loss = train_loss(err);
    eft_free(err), eft_free(cfg);

    /* resume_from_checkpoint, into a new output_dir. */
    char *ckpt = tt_file(&e, "full", "checkpoint-10");
    char *keys = eft_asprintf("%sresume_from_checkpoint: %s\n", lora_keys, ckpt);
    cfg = tt_config(&e, "from10", keys);
    assert_int_equal(tt_train(cfg, NULL, &err), 0);
    assert_contains(err, "resuming from");
    char *loss = train_loss(err);
    assert_string_equal(loss, want_loss);
    eft_free(loss), eft_free(err), eft_free(cfg), eft_free(keys), eft_free(ckpt);
    assert_same(&e, "full", "from10", "adapter_model.safetensors");
    assert_same(&e, "full", "from10", "adapter_config.json");
    assert_same_metrics(&e, "full", "from10");
    assert_same(&e, "full", "from10", "checkpoint-30/adapter_model.safetensors");
    assert_same(&e, "full", "from10", "checkpoint-30/optimizer.safetensors");
    assert_same(&e, "full", "from10", "checkpoint-30/eft_state.json");

    /* Ctrl-C after checkpoint-10, then the same command with auto_resume_from_checkpoints. */
    cfg = tt_config(&e, "sigint", lora_keys);
    err = interrupt(&e, cfg, "sigint", SIGINT);
    eft_free(check_stopped(&e, "sigint", err));
    eft_free(err);
    assert_int_equal(tt_train(cfg, "--auto_resume_from_checkpoints true", &err), 0);
    assert_contains(err, "resuming from");
    loss = train_loss(err);
    assert_string_equal(loss, want_loss);
    eft_free(loss), eft_free(err), eft_free(cfg);
    assert_same(&e, "full", "sigint", "adapter_model.safetensors");
    assert_same_metrics(&e, "full", "sigint");
    assert_same(&e, "full", "sigint", "checkpoint-40/optimizer.safetensors");

    /* SIGTERM, then --resume_from_checkpoint with the path the message gives. */
    cfg = tt_config(&e, "sigterm", lora_keys);
    err = interrupt(&e, cfg, "sigterm", SIGTERM);
    char *from = check_stopped(&e, "sigterm", err);
    eft_free(err);
    char *args = eft_asprintf("--resume_from_checkpoint %s", from);
    assert_int_equal(tt_train(cfg, args, &err), 0);
    loss = train_loss(err);
    assert_string_equal(loss, want_loss);
    eft_free(loss), eft_free(err), eft_free(args), eft_free(from);
    assert_same(&e, "full", "sigterm", "adapter_model.safetensors");
    assert_same_metrics(&e, "full", "sigterm");

    /* SIGKILL: no checkpoint at the stop, maybe a half-written one and metrics lines past the
     * last checkpoint; auto_resume_from_checkpoints starts again from the newest complete one. */
    err = interrupt(&e, cfg, "sigterm", SIGKILL);
    eft_free(err);
    assert_false(exists(&e, "sigterm", "adapter_model.safetensors"));
    assert_int_equal(tt_train(cfg, "--auto_resume_from_checkpoints true", &err), 0);
    assert_contains(err, "resuming from");
    loss = train_loss(err);
    assert_string_equal(loss, want_loss);
    eft_free(loss), eft_free(err), eft_free(cfg);
    assert_same(&e, "full", "sigterm", "adapter_model.safetensors");
    assert_same_metrics(&e, "full", "sigterm");

    eft_free(want_loss);
    tt_env_free(&e);
}

/* Full fine-tuning: every weight and its AdamW state in the checkpoint, two threads. */
static void test_full_resume(void **state) {
    tt_env e;
    tt_env_init(&e, "train_resume_full", 4);
    setenv("OMP_NUM_THREADS", "2", 1); /* after tt_env_init, which sets 1 */
    /* 5 micro-batches of 4 rows per epoch in updates of 2, 2 and 1: 5 updates over 2 epochs;
     * checkpoint-4 is in the second epoch. */
    const char *keys = "sample_packing: false\n"
                       "sequence_len: 64\n"
                       "micro_batch_size: 4\n"
                       "gradient_accumulation_steps: 2\n"
                       "num_epochs: 2\n"
                       "save_steps: 4\n"
                       "logging_steps: 3\n"
                       "learning_rate: 0.003\n"
                       "warmup_steps: 3\n"
                       "weight_decay: 0.01\n"
                       "optimizer: adamw_torch_fused\n"
                       "seed: 5\n";
    char *cfg = tt_config(&e, "full", keys);
    char *err = NULL;
    assert_int_equal(tt_train(cfg, NULL, &err), 0);
    assert_contains(err, "full fine-tuning");
    char *want_loss = train_loss(err);
    eft_free(err), eft_free(cfg);
    assert_true(exists(&e, "full", "checkpoint-4/model.safetensors"));

    char *ckpt = tt_file(&e, "full", "checkpoint-4");
    char *args = eft_asprintf("--resume_from_checkpoint %s", ckpt);
    cfg = tt_config(&e, "from4", keys);
    assert_int_equal(tt_train(cfg, args, &err), 0);
    char *loss = train_loss(err);
    assert_string_equal(loss, want_loss);
    eft_free(loss), eft_free(err), eft_free(cfg), eft_free(args), eft_free(ckpt);
    assert_same(&e, "full", "from4", "model.safetensors");
    assert_same(&e, "full", "from4", "checkpoint-5/optimizer.safetensors");
    assert_same_metrics(&e, "full", "from4");
    eft_free(want_loss);
    tt_env_free(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lora_resume),
        cmocka_unit_test(test_full_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
