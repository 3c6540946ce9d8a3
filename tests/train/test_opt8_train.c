/* test_opt8_train.c: `eft train` with the 8-bit optimizers, end to end, on a tiny 31B-shaped
 * model (eft init-model) and the demo's tokenizer and chat data. LoRA r = 136 gives adapter
 * tensors of each kind: 2176 elements (fp32 state), 6528 (>= 4096 but not a multiple of 256:
 * fp32 for torchao, 8-bit with a partial block for bitsandbytes) and 13056 (8-bit for both).
 * A run trains, checkpoints and logs torchao's fp32 learning rate; a second run resumed from its
 * first checkpoint ends with the same adapter and optimizer state, byte for byte; a checkpoint
 * of one optimizer does not resume with another. */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEMO EFT_SOURCE_DIR "/examples/demo"

typedef struct fixture {
    char *dir;
} fixture;

static int setup(void **state) {
    fixture *f = eft_calloc(1, sizeof *f);
    f->dir = test_tmpdir("opt8_train");
    char *args = eft_asprintf(
        "init-model --preset tiny-31b --vocab-size 384 --seed 3 --out %s/model", f->dir);
    char *err = NULL;
    if (test_run_eft(args, NULL, &err)) fail_msg("init-model: %s", err);
    eft_free(args), eft_free(err);
    /* The demo's first 32 rows. */
    FILE *in = fopen(DEMO "/train.jsonl", "r");
    assert_non_null(in);
    char *path = eft_asprintf("%s/train.jsonl", f->dir);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    char line[4096];
    for (int i = 0; i < 32 && fgets(line, sizeof line, in); i++) fputs(line, out);
    fclose(in), fclose(out);
    eft_free(path);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    test_tmpdir_cleanup(f->dir);
    eft_free(f);
    return 0;
}

/* Writes <dir>/<name>.yaml for `optimizer` with output_dir <dir>/<name>; returns its path. */
static char *write_config(const fixture *f, const char *name, const char *optimizer) {
    char *text = eft_asprintf("base_model: %s/model\n"
                              "tokenizer_config: " DEMO "\n"
                              "chat_template: gemma4\n"
                              "datasets:\n"
                              "  - path: %s/train.jsonl\n"
                              "    type: chat_template\n"
                              "dataset_prepared_path: %s/prepared\n"
                              "output_dir: %s/%s\n"
                              "sequence_len: 96\n"
                              "sample_packing: true\n"
                              "adapter: lora\n"
                              "lora_r: 136\n"
                              "lora_alpha: 16\n"
                              "lora_target_linear: true\n"
                              "micro_batch_size: 1\n"
                              "max_steps: 4\n"
                              "optimizer: %s\n"
                              "lr_scheduler: cosine\n"
                              "learning_rate: 0.01\n"
                              "warmup_steps: 1\n"
                              "weight_decay: 0.1\n"
                              "save_steps: 2\n"
                              "logging_steps: 1\n"
                              "seed: 7\n",
                              f->dir, f->dir, f->dir, f->dir, name, optimizer);
    char *path = eft_asprintf("%s/%s.yaml", f->dir, name);
    test_write_file(path, text);
    eft_free(text);
    return path;
}

static void train(const char *config, const char *extra) {
    char *args = eft_asprintf("train %s %s", config, extra), *err = NULL;
    if (test_run_eft(args, NULL, &err)) fail_msg("eft %s: %s", args, err);
    eft_free(args), eft_free(err);
}

static void assert_same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = eft_read_file(a, &na), *y = eft_read_file(b, &nb);
    if (!x || !y) fail_msg("%s", eft_err_msg());
    if (na != nb || memcmp(x, y, na)) fail_msg("%s and %s differ", a, b);
    eft_free(x), eft_free(y);
}

/* The checkpoint's 8-bit arrays: U8 code tensors and their scales. */
static int count_codes(const char *path) {
    st_archive *a;
    if (st_open(&a, path)) fail_msg("%s", eft_err_msg());
    int codes = 0;
    for (size_t i = 0; i < st_count(a); i++) {
        const st_tensor *t = st_at(a, i);
        if (t->dtype != ST_U8) continue;
        codes++;
        const char *suffix = strstr(t->name, ".codes");
        assert_non_null(suffix);
        char *scale = eft_asprintf("%.*s.absmax", (int)(suffix - t->name), t->name);
        const st_tensor *s = st_find(a, scale);
        assert_non_null(s);
        assert_int_equal(s->numel, (t->numel + 255) / 256);
        eft_free(scale);
    }
    st_close(a);
    return codes;
}

static void run_optimizer(const fixture *f, const char *optimizer, int want_codes,
                          const char *lr_logged) {
    char name[64];
    snprintf(name, sizeof name, "%s_a", optimizer);
    char *ca = write_config(f, name, optimizer);
    train(ca, "");
    char *out_a = eft_asprintf("%s/%s", f->dir, name);
    snprintf(name, sizeof name, "%s_b", optimizer);
    char *cb = write_config(f, name, optimizer);
    char *resume = eft_asprintf("--resume_from_checkpoint %s/checkpoint-2", out_a);
    train(cb, resume);
    char *out_b = eft_asprintf("%s/%s", f->dir, name);

    char *pa = eft_asprintf("%s/checkpoint-2/optimizer.safetensors", out_a);
    assert_int_equal(count_codes(pa), want_codes);
    /* the resumed run ends where the uninterrupted one does, to the byte */
    char *fa = eft_asprintf("%s/adapter_model.safetensors", out_a);
    char *fb = eft_asprintf("%s/adapter_model.safetensors", out_b);
    assert_same_file(fa, fb);
    char *oa = eft_asprintf("%s/checkpoint-4/optimizer.safetensors", out_a);
    char *ob = eft_asprintf("%s/checkpoint-4/optimizer.safetensors", out_b);
    assert_same_file(oa, ob);
    /* it trained: LoRA B starts at zero and has moved */
    st_archive *a;
    if (st_open(&a, fa)) fail_msg("%s", eft_err_msg());
    const st_tensor *b =
        st_find(a, "base_model.model.model.language_model.layers.5.self_attn.q_proj.lora_B.weight");
    assert_non_null(b);
    float *x = eft_malloc((size_t)b->numel * sizeof *x);
    assert_int_equal(st_to_f32(b, x, (size_t)b->numel), 0);
    int nonzero = 0;
    for (int64_t i = 0; i < b->numel; i++) nonzero += x[i] != 0;
    assert_true(nonzero > b->numel / 2);
    eft_free(x);
    st_close(a);
    /* the learning rate of update 2 (after one warmup update at 0), as logged */
    char *ts = eft_asprintf("%s/checkpoint-4/trainer_state.json", out_a);
    size_t n;
    char *text = eft_read_file(ts, &n);
    assert_non_null(text);
    assert_contains(text, lr_logged);
    eft_free(text), eft_free(ts);
    eft_free(ca), eft_free(cb), eft_free(resume), eft_free(out_a), eft_free(out_b);
    eft_free(pa), eft_free(fa), eft_free(fb), eft_free(oa), eft_free(ob);
}

/* torchao: 8-bit state for the two tensors of 13056 elements (layer 5's q_proj B and o_proj
 * A), and its learning rate is fp32: 0.01 logs as 0.009999999776482582. */
static void test_torchao(void **state) {
    run_optimizer(*state, "adamw_torch_8bit", 4, "\"learning_rate\": 0.009999999776482582");
}

/* bitsandbytes: 8-bit state also for the ten tensors of 6528 elements; a double rate. */
static void test_bnb(void **state) {
    run_optimizer(*state, "adamw_bnb_8bit", 24, "\"learning_rate\": 0.01,");
}

/* A torchao checkpoint holds fp32 state where bitsandbytes keeps codes: resuming it with
 * bitsandbytes is refused with a message that says so. */
static void test_other_optimizer(void **state) {
    const fixture *f = *state;
    char *c = write_config(f, "mixed", "adamw_bnb_8bit");
    char *args = eft_asprintf(
        "train %s --resume_from_checkpoint %s/adamw_torch_8bit_a/checkpoint-2", c, f->dir);
    char *err = NULL;
    assert_int_equal(test_run_eft(args, NULL, &err), 1);
    assert_contains(err, ".exp_avg.codes is missing, not the 6528 U8 values this run's optimizer "
                         "(adamw_bnb_8bit) keeps: the checkpoint was written with another "
                         "optimizer");
    eft_free(err), eft_free(args), eft_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torchao),
        cmocka_unit_test(test_bnb),
        cmocka_unit_test(test_other_optimizer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
