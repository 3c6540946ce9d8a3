/* test_lora_merge.c: `eft merge-lora` against PEFT's merge_and_unload.
 *
 * tools/make_merge_reference.py merged the golden PEFT adapters (random lora_B; tiny-26b-a4b-lora
 * with expert tensors by target_parameters, tiny-31b-lora by the Axolotl regex) into their base
 * checkpoints with PEFT in fp32 and rounded the adapted weights to bf16: Axolotl's formula,
 * bf16(fp32(W) + (B A) s). Here eft merges the same adapter into the same checkpoint and must
 * give those bf16 values: the products are summed in another order than torch's, so a value may
 * land one bf16 step away where fp32(W) + delta sits on a rounding boundary (allowed for at most
 * 1 in 500 values, never more than one step); every other tensor is copied byte for byte, the
 * other files of the folder too, a sharded checkpoint keeps its shards and index, and eft's loss
 * on the merged model is its loss with the adapter on the base, up to the bf16 rounding.
 * A folder already at output_dir/merged is replaced only by a complete one.
 *
 * QLoRA: the same adapters merged as those of QLoRA runs (load_in_4bit; for 26B-A4B also
 * quantize_moe_experts), against the reference made with bitsandbytes' NF4 round trip on the
 * CPU (quantize_4bit of each adapted tensor flattened, dequantised, rounded to bf16, then PEFT's
 * delta). The same bound holds: eft's quantiser is bitsandbytes' bit for bit except the absmax
 * mean, which eft rounds correctly and torch sums in its own order (peft/nf4.h), so a few more
 * values may sit one bf16 step away. Without the round trip every adapted value moves by NF4's
 * error (9 in 10 values by more than one bf16 step), so the check fails; with quantize_moe_experts
 * off, the expert tensors must be LoRA's merge and the linear maps QLoRA's. eft's loss on the
 * merged model is then its QLoRA loss (the adapter on the NF4 base) up to the bf16 rounding.
 */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/buf.h"
#include "io/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fx {
    char *dir, *base, *adapter, *out, *cfg;
} fx;

static int fixture_seed(const char *name) {
    char *path = eft_asprintf("%s/tests/data_files/golden/%s.safetensors", EFT_SOURCE_DIR, name);
    st_archive *ar;
    if (st_open(&ar, path)) fail_msg("%s", eft_err_msg());
    const char *seed = st_meta_get(ar, 0, "seed");
    assert_non_null(seed);
    int s = atoi(seed);
    st_close(ar);
    eft_free(path);
    return s;
}

/* qlora: the config's extra lines for a QLoRA run ("" for LoRA). */
static void fx_open_run(fx *f, const char *fixture, const char *preset, const char *qlora) {
    f->dir = test_tmpdir("merge");
    f->base = eft_path_join(f->dir, "base");
    f->out = eft_path_join(f->dir, "out");
    f->adapter = eft_asprintf("%s/tests/data_files/golden/%s", EFT_SOURCE_DIR, fixture);
    char *cmd = eft_asprintf("init-model --preset %s --out %s --seed %d", preset, f->base,
                             fixture_seed(fixture));
    assert_int_equal(test_run_eft(cmd, NULL, NULL), 0);
    eft_free(cmd);
    /* The folder's other files travel: a tokenizer and a generation config stand in for them. */
    char *p = eft_path_join(f->base, "generation_config.json");
    assert_int_equal(eft_write_file_atomic(p, "{\"do_sample\": false}\n", 21), 0);
    eft_free(p);
    f->cfg = eft_path_join(f->dir, "config.yaml");
    char *yaml =
        eft_asprintf("base_model: %s\ntokenizer_config: %s/examples/demo\n"
                     "datasets:\n  - path: x.jsonl\n    type: completion\n"
                     "adapter: %s\nlora_r: 4\nlora_alpha: 8\nlearning_rate: 1e-4\n"
                     "lora_model_dir: %s\noutput_dir: %s\n%s",
                     f->base, EFT_SOURCE_DIR, *qlora ? "qlora" : "lora", f->adapter, f->out, qlora);
    assert_int_equal(eft_write_file_atomic(f->cfg, yaml, strlen(yaml)), 0);
    eft_free(yaml);
}

static void fx_open(fx *f, const char *fixture, const char *preset) {
    fx_open_run(f, fixture, preset, "");
}

static void fx_close(fx *f) {
    eft_free(f->base), eft_free(f->adapter), eft_free(f->out), eft_free(f->cfg);
    test_tmpdir_cleanup(f->dir);
}

/* Runs the merge; returns what it printed (owned). */
static char *merge_output(const fx *f) {
    char *cmd = eft_asprintf("merge-lora %s", f->cfg), *out = NULL, *err = NULL;
    if (test_run_eft(cmd, &out, &err)) fail_msg("eft %s: %s", cmd, err);
    eft_free(cmd), eft_free(err);
    return out;
}

static void run_merge(const fx *f) {
    eft_free(merge_output(f));
}

static st_archive *open_ref(const char *name) {
    char *path = eft_asprintf("%s/tests/data_files/golden/%s.safetensors", EFT_SOURCE_DIR, name);
    st_archive *ar;
    if (st_open(&ar, path)) fail_msg("%s", eft_err_msg());
    eft_free(path);
    return ar;
}

/* The merged folder against PEFT's values (the reference `name`, e.g. "tiny-31b-lora-merged";
 * for the expert tensors the reference `experts`, NULL: the same) and the base's bytes. */
static void check_against_peft(const fx *f, const char *name, const char *experts) {
    const char *fixture = name;
    char *merged_dir = eft_path_join(f->out, "merged");
    st_archive *ref = open_ref(name), *ref_x = experts ? open_ref(experts) : ref, *base, *merged;
    if (st_open(&base, f->base) || st_open(&merged, merged_dir)) fail_msg("%s", eft_err_msg());
    assert_int_equal(st_count(merged), st_count(base));
    size_t values = 0, off_by_one = 0, adapted = 0;
    for (size_t i = 0; i < st_count(base); i++) {
        const st_tensor *b = st_at(base, i), *m = st_find(merged, b->name);
        assert_non_null(m);
        assert_int_equal(m->dtype, b->dtype);
        assert_int_equal(m->nbytes, b->nbytes);
        const st_tensor *r = st_find(strstr(b->name, ".experts.") ? ref_x : ref, b->name);
        if (!r) {
            if (memcmp(m->data, b->data, b->nbytes))
                fail_msg("%s: changed, but PEFT's merge leaves it", b->name);
            continue;
        }
        adapted++;
        assert_int_equal(r->dtype, ST_BF16);
        const uint16_t *x = m->data, *y = r->data, *w = b->data;
        bool moved = false;
        for (int64_t k = 0; k < r->numel; k++) {
            int d = abs((int)x[k] - (int)y[k]); /* same sign: one bf16 step is one code */
            if (d > 1) fail_msg("%s[%lld]: eft %#x, PEFT %#x", b->name, (long long)k, x[k], y[k]);
            off_by_one += d;
            moved |= x[k] != w[k];
        }
        values += (size_t)r->numel;
        if (!moved) fail_msg("%s: the adapter changed nothing", b->name);
    }
    assert_int_equal(adapted, st_count(ref));
    print_message("%s: %zu tensors merged, %zu of %zu values one bf16 step from PEFT's\n", fixture,
                  adapted, off_by_one, values);
    assert_true(off_by_one * 500 <= values);
    char *cfg_a = eft_path_join(f->base, "config.json"),
         *cfg_b = eft_path_join(merged_dir, "config.json");
    char *gen = eft_path_join(merged_dir, "generation_config.json");
    size_t na, nb;
    char *a = eft_read_file(cfg_a, &na), *b = eft_read_file(cfg_b, &nb);
    assert_true(a && b && na == nb && !memcmp(a, b, na));
    assert_true(eft_is_file(gen));
    eft_free(a), eft_free(b), eft_free(cfg_a), eft_free(cfg_b), eft_free(gen);
    if (ref_x != ref) st_close(ref_x);
    st_close(ref), st_close(base), st_close(merged);
    eft_free(merged_dir);
}

/* eft's loss on the golden rows; flags: extra `eft debug loss` flags ("--load-in-4bit"). */
static double loss_of(const char *model, const char *adapter, const char *flags) {
    char *rows = eft_asprintf("%s/tests/data_files/golden/rows.jsonl", EFT_SOURCE_DIR);
    char *cmd = adapter ? eft_asprintf("debug loss --model %s --adapter %s --input %s %s", model,
                                       adapter, rows, flags)
                        : eft_asprintf("debug loss --model %s --input %s %s", model, rows, flags);
    char *out = NULL, *err = NULL;
    if (test_run_eft(cmd, &out, &err)) fail_msg("eft %s: %s", cmd, err);
    const char *l = strstr(out, "\"loss\": ");
    assert_non_null(l);
    double v = strtod(l + 8, NULL);
    eft_free(cmd), eft_free(out), eft_free(err), eft_free(rows);
    return v;
}

static void check_fixture(const char *fixture, const char *preset) {
    fx f;
    fx_open(&f, fixture, preset);
    run_merge(&f);
    char *ref = eft_asprintf("%s-merged", fixture);
    check_against_peft(&f, ref, NULL);
    eft_free(ref);
    char *merged = eft_path_join(f.out, "merged");
    double with = loss_of(f.base, f.adapter, ""), base = loss_of(f.base, NULL, "");
    double m = loss_of(merged, NULL, "");
    print_message("loss: base %.6f, base + adapter %.6f, merged %.6f\n", base, with, m);
    /* bf16 rounding of the merged weights moves the loss a little (and may move a token's
     * experts), far less than the adapter does. */
    assert_true(fabs(m - with) < 0.25 * fabs(with - base));
    eft_free(merged);
    fx_close(&f);
}

/* A QLoRA run's merge: ref (and experts, for the expert tensors) the references, qlora the
 * config's lines, flags those of `eft debug loss` that load the base as the run did; roundtrips
 * tensors go through the NF4 round trip. */
static void check_qlora(const char *fixture, const char *preset, const char *ref,
                        const char *experts, const char *qlora, const char *flags, int roundtrips) {
    fx f;
    fx_open_run(&f, fixture, preset, qlora);
    char *out = merge_output(&f);
    check_against_peft(&f, ref, experts);
    char *want = eft_asprintf("(%d through the NF4 round trip;", roundtrips);
    assert_contains(out, want);
    if (!experts) { /* as many as the reference sent */
        st_archive *ar = open_ref(ref);
        const char *n = st_meta_get(ar, 0, "nf4_roundtrips");
        assert_true(n && atoi(n) == roundtrips);
        st_close(ar);
    }
    eft_free(want), eft_free(out);
    char *merged = eft_path_join(f.out, "merged");
    double with = loss_of(f.base, f.adapter, flags), base = loss_of(f.base, NULL, flags);
    double m = loss_of(merged, NULL, "");
    print_message("QLoRA loss: NF4 base %.6f, NF4 base + adapter %.6f, merged %.6f\n", base, with,
                  m);
    assert_true(fabs(m - with) < 0.25 * fabs(with - base));
    eft_free(merged);
    fx_close(&f);
}

static void test_qlora_dense(void **state) {
    check_qlora("tiny-31b-lora", "tiny-31b", "tiny-31b-lora-qlora-merged", NULL,
                "load_in_4bit: true\n", "--load-in-4bit", 41);
}

/* 26B-A4B with NF4 experts: all 53 adapted tensors (41 linear maps, 12 expert tensors). */
static void test_qlora_experts(void **state) {
    check_qlora("tiny-26b-a4b-lora", "tiny-26b-a4b", "tiny-26b-a4b-lora-qlora-experts-merged", NULL,
                "load_in_4bit: true\nquantize_moe_experts: true\n",
                "--load-in-4bit --quantize-moe-experts", 53);
}

/* Without quantize_moe_experts training held the experts in bf16: their merge is LoRA's, the
 * linear maps' QLoRA's. */
static void test_qlora_bf16_experts(void **state) {
    check_qlora("tiny-26b-a4b-lora", "tiny-26b-a4b", "tiny-26b-a4b-lora-qlora-experts-merged",
                "tiny-26b-a4b-lora-merged", "load_in_4bit: true\n", "--load-in-4bit", 41);
}

static void test_experts_peft(void **state) {
    check_fixture("tiny-26b-a4b-lora", "tiny-26b-a4b");
}

static void test_dense_peft(void **state) {
    check_fixture("tiny-31b-lora", "tiny-31b");
}

/* eft's NF4 has double quantisation only: a run without it is refused, at its key. */
static void test_qlora_needs_double_quant(void **state) {
    fx f;
    fx_open_run(&f, "tiny-31b-lora", "tiny-31b",
                "load_in_4bit: true\nbnb_config_kwargs:\n  bnb_4bit_use_double_quant: false\n");
    char *cmd = eft_asprintf("merge-lora %s", f.cfg), *err = NULL;
    assert_int_equal(test_run_eft(cmd, NULL, &err), 1);
    assert_contains(err, "config.yaml:14:30: bnb_config_kwargs.bnb_4bit_use_double_quant: false");
    assert_false(eft_path_exists(f.out));
    eft_free(cmd), eft_free(err);
    fx_close(&f);
}

/* A sharded base: every shard is written under its name with its tensors, the index is copied,
 * and the values equal the single-file merge's. */
static void test_sharded(void **state) {
    fx f;
    fx_open(&f, "tiny-31b-lora", "tiny-31b");
    run_merge(&f);
    char *single = eft_path_join(f.dir, "single");
    char *merged = eft_path_join(f.out, "merged");
    assert_int_equal(rename(merged, single), 0);
    /* Split the base: tensors alternate between two shards. */
    char *file = eft_path_join(f.base, "model.safetensors");
    st_archive *ar;
    if (st_open(&ar, file)) fail_msg("%s", eft_err_msg());
    st_writer *w[2] = {st_writer_new(), st_writer_new()};
    eft_buf idx = {0};
    eft_buf_puts(&idx, "{\"metadata\": {}, \"weight_map\": {");
    for (size_t i = 0; i < st_count(ar); i++) {
        const st_tensor *t = st_at(ar, i);
        st_writer_add(w[i % 2], t->name, t->dtype, t->ndim, t->shape, t->data);
        eft_buf_printf(&idx, "%s\"%s\": \"model-0000%zu-of-00002.safetensors\"", i ? ", " : "",
                       t->name, i % 2 + 1);
    }
    eft_buf_puts(&idx, "}}\n");
    for (int s = 0; s < 2; s++) {
        char *p = eft_asprintf("%s/model-0000%d-of-00002.safetensors", f.base, s + 1);
        assert_int_equal(st_writer_write(w[s], p), 0);
        st_writer_free(w[s]);
        eft_free(p);
    }
    st_close(ar);
    assert_int_equal(unlink(file), 0);
    char *index = eft_path_join(f.base, "model.safetensors.index.json");
    assert_int_equal(eft_write_file_atomic(index, idx.data, idx.len), 0);
    run_merge(&f);
    st_archive *a, *b;
    if (st_open(&a, merged) || st_open(&b, single)) fail_msg("%s", eft_err_msg());
    assert_int_equal(st_shard_count(a), 2);
    assert_int_equal(st_count(a), st_count(b));
    for (size_t i = 0; i < st_count(b); i++) {
        const st_tensor *x = st_at(a, i), *y = st_at(b, i);
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    char *copied = eft_path_join(merged, "model.safetensors.index.json");
    size_t n;
    char *text = eft_read_file(copied, &n);
    assert_true(text && n == idx.len && !memcmp(text, idx.data, n));
    eft_free(text), eft_free(copied);
    st_close(a), st_close(b);
    eft_buf_free(&idx);
    eft_free(index), eft_free(file), eft_free(single), eft_free(merged);
    fx_close(&f);
}

/* An old merged folder stays when the merge fails, and is replaced when it succeeds. */
static void test_replaces_only_when_done(void **state) {
    fx f;
    fx_open(&f, "tiny-31b-lora", "tiny-31b");
    char *merged = eft_path_join(f.out, "merged");
    char *marker = eft_path_join(merged, "old.txt");
    assert_int_equal(eft_mkdirs(merged), 0);
    assert_int_equal(eft_write_file_atomic(marker, "old\n", 4), 0);
    char *cmd = eft_asprintf("merge-lora %s --lora-model-dir %s/none", f.cfg, f.dir), *err = NULL;
    assert_int_equal(test_run_eft(cmd, NULL, &err), 1);
    assert_contains(err, "none/adapter_config.json: not found");
    assert_true(eft_is_file(marker));
    eft_free(cmd), eft_free(err);
    run_merge(&f);
    assert_false(eft_path_exists(marker));
    char *weights = eft_path_join(merged, "model.safetensors");
    assert_true(eft_is_file(weights));
    eft_free(weights), eft_free(marker), eft_free(merged);
    fx_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_experts_peft),
        cmocka_unit_test(test_dense_peft),
        cmocka_unit_test(test_qlora_dense),
        cmocka_unit_test(test_qlora_experts),
        cmocka_unit_test(test_qlora_bf16_experts),
        cmocka_unit_test(test_qlora_needs_double_quant),
        cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_replaces_only_when_done),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
