/* test_ds_formats.c: each dataset format on small handmade rows, with the expected ids and labels
 * built here from the byte-level test tokenizer (one token per byte, see ds_test.h): alpaca's
 * exact prompt text with and without input, train_on_inputs, EOS and truncation; a user-defined
 * instruct mapping; completion's cutting into sequence_len pieces and its 64 x sequence_len cap;
 * input_output masking; pre-tokenized pass-through; and the errors each format gives for a bad
 * row. */
#include "data/ds_test.h"

#include "data/ds_format.h"

static int setup(void **state) {
    *state = ds_fx_open("ds_formats");
    return 0;
}

static int run(ds_fx *f, const char *top, const char *entry, const char *data, ds_samples *out,
               int *skips) {
    return ds_test_format_rows(f, "data.jsonl", top, entry, data, out, skips);
}

/* Checks sample i against ids[n] and labels[n]. */
static void check_sample(const ds_samples *s, int64_t i, const int32_t *ids, const int32_t *labels,
                         int n) {
    assert_true(i < s->n);
    if (ds_len(s, i) != n)
        fail_msg("sample %lld: %lld tokens, expected %d", (long long)i, (long long)ds_len(s, i), n);
    for (int k = 0; k < n; k++) {
        int64_t t = s->off[i] + k;
        if (s->ids[t] != ids[k] || ds_label(s, t) != labels[k])
            fail_msg("sample %lld token %d: id %d label %d, expected id %d label %d", (long long)i,
                     k, s->ids[t], ds_label(s, t), ids[k], labels[k]);
    }
}

/* Builds the expected tokens of `text` as bytes, with label `train ? id : -100`. */
static void add_text(int32_t *ids, int32_t *labels, int *n, const char *text, bool train) {
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        ids[*n] = tb(*p);
        labels[*n] = train ? ids[*n] : -100;
        (*n)++;
    }
}
static void add_id(int32_t *ids, int32_t *labels, int *n, int32_t id, bool train) {
    ids[*n] = id;
    labels[*n] = train ? id : -100;
    (*n)++;
}

#define ALPACA_IN                                                                                  \
    "Below is an instruction that describes a task, paired with an input that provides further "   \
    "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"    \
    "Add.\n\n### Input:\n2 2\n\n### Response:\n"
#define ALPACA_NO_IN                                                                               \
    "Below is an instruction that describes a task. Write a response that appropriately "          \
    "completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:\n"

static void test_alpaca(void **state) {
    ds_fx *f = *state;
    ds_samples s;
    const char *rows = "{\"instruction\": \"Add.\", \"input\": \"2 2\", \"output\": \"4\"}\n"
                       "{\"instruction\": \"Say hi.\", \"input\": \"\", \"output\": \"hi\"}\n"
                       "{\"instruction\": \"Say hi.\", \"output\": \"hi\"}\n";
    if (run(f, "", "type: alpaca", rows, &s, NULL)) fail_msg("%s", eft_err_msg());
    assert_int_equal(s.n, 3);
    static int32_t ids[1024], labels[1024];
    int n = 0;
    add_id(ids, labels, &n, T_BOS, false);
    add_text(ids, labels, &n, ALPACA_IN, false);
    add_text(ids, labels, &n, "4", true);
    add_id(ids, labels, &n, T_EOS, true);
    check_sample(&s, 0, ids, labels, n);
    n = 0;
    add_id(ids, labels, &n, T_BOS, false);
    add_text(ids, labels, &n, ALPACA_NO_IN, false);
    add_text(ids, labels, &n, "hi", true);
    add_id(ids, labels, &n, T_EOS, true);
    check_sample(&s, 1, ids, labels, n); /* an empty input reads as no input */
    check_sample(&s, 2, ids, labels, n); /* and so does a missing one */
    ds_samples_free(&s);

    /* train_on_inputs: the prompt (its <bos> too) is trained */
    if (run(f, "train_on_inputs: true", "type: alpaca", rows, &s, NULL))
        fail_msg("%s", eft_err_msg());
    n = 0;
    add_id(ids, labels, &n, T_BOS, true);
    add_text(ids, labels, &n, ALPACA_IN, true);
    add_text(ids, labels, &n, "4", true);
    add_id(ids, labels, &n, T_EOS, true);
    check_sample(&s, 0, ids, labels, n);
    ds_samples_free(&s);

    /* each part is cut to sequence_len on its own; a cut response gets no EOS; a null output
     * is an empty response (no trained token: the filters drop such a sample) */
    if (run(f, "sequence_len: 8", "type: alpaca",
            "{\"instruction\": \"x\", \"output\": \"abcdefghijkl\"}\n"
            "{\"instruction\": \"x\", \"output\": null}\n",
            &s, NULL))
        fail_msg("%s", eft_err_msg());
    n = 0;
    add_id(ids, labels, &n, T_BOS, false);
    add_text(ids, labels, &n, "Below is", false); /* bos + 7 bytes... */
    n = 8;                                        /* ...the prompt is cut at 8 tokens */
    add_text(ids, labels, &n, "abcdefg", true);   /* <bos> + 7, <bos> dropped, no EOS */
    check_sample(&s, 0, ids, labels, n);
    assert_int_equal(ds_len(&s, 1), 8);
    assert_int_equal(ds_sample_trained(&s, 1), 0);
    ds_samples_free(&s);
}

static void test_alpaca_errors(void **state) {
    ds_fx *f = *state;
    ds_samples s;
    assert_int_equal(run(f, "", "type: alpaca",
                         "{\"instruction\": \"a\", \"output\": \"b\"}\n\n{\"output\": \"b\"}\n", &s,
                         NULL),
                     -1);
    assert_contains(eft_err_msg(), "data.jsonl:3: instruction: missing in this row");
    ds_samples_free(&s);
    assert_int_equal(
        run(f, "", "type: alpaca", "{\"instruction\": \"a\", \"output\": 5}\n", &s, NULL), -1);
    assert_contains(eft_err_msg(), "data.jsonl:1: output: expected a string, found a number");
    ds_samples_free(&s);
    assert_int_equal(run(f, "", "type: alpaca", "{\"instruction\": \"a\"}\n", &s, NULL), -1);
    assert_contains(eft_err_msg(), "data.jsonl:1: output: missing");
    ds_samples_free(&s);
}

static void test_user_defined(void **state) {
    ds_fx *f = *state;
    ds_samples s;
    const char *entry = "type: {system_prompt: SYS, system_format: \"[{system}] \", "
                        "format: \"Q: {instruction} ({input}) {{x}} A: \", no_input_format: "
                        "\"Q: {instruction} A: \", field_instruction: q, field_output: a}";
    const char *rows = "{\"q\": \"one\", \"input\": \"in\", \"a\": \"1\"}\n"
                       "{\"q\": \"two\", \"a\": \"2\", \"system\": \"own\"}\n"
                       "{\"q\": \"three\", \"system\": null}\n";
    if (run(f, "", entry, rows, &s, NULL)) fail_msg("%s", eft_err_msg());
    assert_int_equal(s.n, 3);
    static int32_t ids[256], labels[256];
    int n = 0;
    add_id(ids, labels, &n, T_BOS, false);
    add_text(ids, labels, &n, "[SYS] Q: one (in) {x} A: ", false);
    add_text(ids, labels, &n, "1", true);
    add_id(ids, labels, &n, T_EOS, true);
    check_sample(&s, 0, ids, labels, n);
    n = 0;
    add_id(ids, labels, &n, T_BOS, false);
    add_text(ids, labels, &n, "[own] Q: two A: ", false);
    add_text(ids, labels, &n, "2", true);
    add_id(ids, labels, &n, T_EOS, true);
    check_sample(&s, 1, ids, labels, n);
    n = 0; /* a null system means none; a missing output is an empty response */
    add_id(ids, labels, &n, T_BOS, false);
    add_text(ids, labels, &n, "Q: three A: ", false);
    check_sample(&s, 2, ids, labels, n);
    ds_samples_free(&s);

    assert_int_equal(run(f, "", "type: {format: \"{instruction} {output}\"}", rows, &s, NULL), -1);
    assert_contains(eft_err_msg(), "type.format: unknown placeholder {output}");
    ds_samples_free(&s);
}

static void test_completion(void **state) {
    ds_fx *f = *state;
    ds_samples s;
    int skips;
    const char *rows = "{\"text\": \"abcdefghijklmnopqrstuvwxy\"}\n{\"text\": \"\"}\n"
                       "{\"text\": null}\n{\"text\": \"z\"}\n";
    if (run(f, "sequence_len: 10", "type: completion", rows, &s, &skips))
        fail_msg("%s", eft_err_msg());
    /* <bos> + 25 bytes + EOS = 27 tokens -> 10, 10, 7; "z" -> <bos> z EOS */
    assert_int_equal(s.n, 4);
    assert_int_equal(skips, 2);
    static int32_t ids[64], labels[64];
    int n = 0;
    add_id(ids, labels, &n, T_BOS, true);
    add_text(ids, labels, &n, "abcdefghijklmnopqrstuvwxy", true);
    add_id(ids, labels, &n, T_EOS, true);
    check_sample(&s, 0, ids, labels, 10);
    check_sample(&s, 1, ids + 10, labels + 10, 10);
    check_sample(&s, 2, ids + 20, labels + 20, 7);
    n = 0;
    add_id(ids, labels, &n, T_BOS, true);
    add_text(ids, labels, &n, "z", true);
    add_id(ids, labels, &n, T_EOS, true);
    check_sample(&s, 3, ids, labels, n);
    ds_samples_free(&s);

    /* the text is first cut to 64 x sequence_len tokens, and a cut text gets no EOS */
    char text[300];
    memset(text, 'q', 200);
    text[200] = 0;
    char *row = eft_asprintf("{\"body\": \"%s\"}\n", text);
    if (run(f, "sequence_len: 2", "type: completion, field: body", row, &s, NULL))
        fail_msg("%s", eft_err_msg());
    assert_int_equal(s.n, 64);
    assert_int_equal(s.n_tokens, 128);
    assert_int_equal(s.ids[0], T_BOS);
    assert_int_equal(s.ids[127], tb('q'));
    ds_samples_free(&s);
    eft_free(row);

    assert_int_equal(run(f, "", "type: completion", "{\"txt\": \"a\"}\n", &s, NULL), -1);
    assert_contains(eft_err_msg(), "data.jsonl:1: text: missing in this row");
    ds_samples_free(&s);
}

static void test_input_output(void **state) {
    ds_fx *f = *state;
    ds_samples s;
    const char *rows = "{\"segments\": [{\"label\": false, \"text\": \"<bos>Q:\"}, "
                       "{\"label\": true, \"text\": \"A<eos>\"}, {\"label\": false, \"text\": "
                       "\"!\"}]}\n";
    if (run(f, "", "type: input_output", rows, &s, NULL)) fail_msg("%s", eft_err_msg());
    static int32_t ids[16], labels[16];
    int n = 0;
    add_id(ids, labels, &n, T_BOS, false); /* written in the text: no <bos> is added */
    add_text(ids, labels, &n, "Q:", false);
    add_text(ids, labels, &n, "A", true);
    add_id(ids, labels, &n, T_EOS, true);
    add_text(ids, labels, &n, "!", false);
    check_sample(&s, 0, ids, labels, n);
    ds_samples_free(&s);
    if (run(f, "train_on_inputs: true", "type: input_output", rows, &s, NULL))
        fail_msg("%s", eft_err_msg());
    assert_int_equal(ds_sample_trained(&s, 0), n);
    ds_samples_free(&s);

    assert_int_equal(run(f, "", "type: input_output",
                         "{\"segments\": [{\"label\": \"yes\", \"text\": \"a\"}]}\n", &s, NULL),
                     -1);
    assert_contains(eft_err_msg(), "data.jsonl:1: segments[0]: label: expected true or false");
    ds_samples_free(&s);
    assert_int_equal(run(f, "", "type: input_output", "{\"segments\": \"a\"}\n", &s, NULL), -1);
    assert_contains(eft_err_msg(), "segments: expected a list");
    ds_samples_free(&s);
}

static void test_pretokenized(void **state) {
    ds_fx *f = *state;
    ds_samples s;
    const char *rows = "{\"input_ids\": [2, 70, 71, 1], \"labels\": [-100, 70, 9, 1]}\n"
                       "{\"input_ids\": [2, 80, 81]}\n"
                       "{\"input_ids\": [2, 90, 91, 0, 0], \"labels\": [-100, 90, 91, -100, "
                       "-100], \"attention_mask\": [1, 1, 1, 0, 0]}\n";
    if (run(f, "", "ds_type: json", rows, &s, NULL)) fail_msg("%s", eft_err_msg());
    assert_int_equal(s.n, 3);
    assert_non_null(s.labels); /* a label (9) that is not its token's id: full labels kept */
    check_sample(&s, 0, (int32_t[]){2, 70, 71, 1}, (int32_t[]){-100, 70, 9, 1}, 4);
    check_sample(&s, 1, (int32_t[]){2, 80, 81}, (int32_t[]){2, 80, 81}, 3);    /* labels = ids */
    check_sample(&s, 2, (int32_t[]){2, 90, 91}, (int32_t[]){-100, 90, 91}, 3); /* padding out */
    ds_samples_free(&s);

    assert_int_equal(run(f, "", "ds_type: json", "{\"input_ids\": [1, 999]}\n", &s, NULL), -1);
    assert_contains(eft_err_msg(), "input_ids: item 1: 999 is outside the vocabulary [0, 262)");
    ds_samples_free(&s);
    assert_int_equal(
        run(f, "", "ds_type: json", "{\"input_ids\": [1, 2], \"labels\": [1]}\n", &s, NULL), -1);
    assert_contains(eft_err_msg(), "labels: has 1 items but input_ids has 2");
    ds_samples_free(&s);
    assert_int_equal(run(f, "", "ds_type: json", "{\"text\": \"a\"}\n", &s, NULL), -1);
    assert_contains(eft_err_msg(), "input_ids: missing in this row. A dataset with no type:");
    ds_samples_free(&s);
    assert_int_equal(run(f, "", "ds_type: json", "{\"input_ids\": [1, 2.5]}\n", &s, NULL), -1);
    assert_contains(eft_err_msg(), "input_ids: item 1: expected an integer");
    ds_samples_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpaca),       cmocka_unit_test(test_alpaca_errors),
        cmocka_unit_test(test_user_defined), cmocka_unit_test(test_completion),
        cmocka_unit_test(test_input_output), cmocka_unit_test(test_pretokenized),
    };
    return cmocka_run_group_tests(tests, setup, ds_fx_teardown);
}
