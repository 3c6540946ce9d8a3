/* test_preprocess_cli.c: `eft preprocess` end to end: a ShareGPT-style chat dataset and an
 * alpaca dataset with packing and a validation split; the counts it prints (per dataset, with
 * drop reasons; totals; packing efficiency; steps); the cache reused on the second run; a
 * config override; the --dump file (one {"input_ids", "labels"} object per sample, train then
 * eval); the --debug view; and user errors with exit status 1. */
#include "data/ds_test.h"

#include "io/json.h"

#include <stdlib.h>

static int setup(void **state) {
    *state = ds_fx_open("preprocess_cli");
    return 0;
}

#define CHAT_ROWS                                                                                  \
    "{\"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}, {\"from\": \"gpt\", "          \
    "\"value\": \"Hello!\"}]}\n"                                                                   \
    "{\"conversations\": [{\"from\": \"human\", \"value\": \"2+2?\"}, {\"from\": \"gpt\", "        \
    "\"value\": \"4\"}]}\n"                                                                        \
    "{\"conversations\": [{\"from\": \"human\", \"value\": \"no answer\"}]}\n"                     \
    "{\"conversations\": [{\"from\": \"human\", \"value\": \"long\"}, {\"from\": \"gpt\", "        \
    "\"value\": \"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\"}]}\n"

static char *write_config(ds_fx *f, const char *extra) {
    char *chat = ds_test_file(f->dir, "chat.jsonl", CHAT_ROWS);
    char *alpaca = ds_test_file(f->dir, "alpaca.json",
                                "[{\"instruction\": \"Say hi.\", \"output\": \"hi\"}, "
                                "{\"instruction\": \"Add.\", \"input\": \"1 1\", \"output\": "
                                "\"2\"}]");
    char *yaml = eft_asprintf("base_model: %s\nlearning_rate: 0.0002\nsequence_len: 256\n"
                              "micro_batch_size: 2\ngradient_accumulation_steps: 1\n"
                              "sample_packing: true\nchat_template: gemma4\neot_tokens: "
                              "[\"<turn|>\"]\nval_set_size: 0.25\ndataset_prepared_path: %s/prep\n"
                              "datasets:\n  - path: %s\n    type: chat_template\n"
                              "    field_messages: conversations\n"
                              "    message_property_mappings: {role: from, content: value}\n"
                              "  - path: %s\n    type: alpaca\n%s",
                              f->model, f->dir, chat, alpaca, extra);
    char *path = ds_test_file(f->dir, "config.yaml", yaml);
    eft_free(yaml), eft_free(chat), eft_free(alpaca);
    return path;
}

static void test_end_to_end(void **state) {
    ds_fx *f = *state;
    char *cfg = write_config(f, "");
    char *dump = eft_path_join(f->dir, "dump.jsonl");
    char *args = eft_asprintf("preprocess %s --dump %s --sequence-len 64", cfg, dump);
    char *out, *err;
    int code = test_run_eft(args, &out, &err);
    if (code) fail_msg("exit %d: %s", code, err);
    /* chat: the question without an answer has nothing to train; the long one is over 64 */
    assert_contains(err, "datasets[0] (");
    assert_contains(err, "4 rows -> 4 samples, kept 2");
    assert_contains(err, "dropped 1 longer than 64, 1 with no trained token");
    /* alpaca prompts are ~150 tokens: both over 64 */
    assert_contains(err, "datasets[1] (");
    assert_contains(err, "2 rows -> 2 samples, kept 0");
    assert_contains(err, "train: 1 samples");
    assert_contains(err, "eval: 1 samples");
    assert_contains(err, "packing: 1 samples into 1 bins of 128 tokens, efficiency");
    assert_contains(err, "steps: 1 micro-batches per epoch");
    assert_contains(err, "(written)");
    assert_contains(err, "wrote 2 samples to");
    /* the dump: one object per sample, ids and labels of the same length */
    char *text = eft_read_file(dump, NULL);
    assert_non_null(text);
    int lines = 0, trained = 0;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        cJSON *o = eft_json_parse(line, (size_t)(nl - line), "dump");
        assert_non_null(o);
        assert_int_equal(cJSON_GetArraySize(o), 2);
        const cJSON *ids = cJSON_GetObjectItem(o, "input_ids");
        const cJSON *labels = cJSON_GetObjectItem(o, "labels");
        assert_int_equal(cJSON_GetArraySize(ids), cJSON_GetArraySize(labels));
        assert_int_equal(cJSON_GetArrayItem(ids, 0)->valueint, T_BOS);
        for (int k = 0; k < cJSON_GetArraySize(ids); k++) {
            int l = cJSON_GetArrayItem(labels, k)->valueint;
            assert_true(l == -100 || l == cJSON_GetArrayItem(ids, k)->valueint);
            trained += l != -100;
        }
        cJSON_Delete(o);
        lines++;
    }
    assert_int_equal(lines, 2);
    assert_int_equal(trained, 6 + 1 + 2 * 1); /* "Hello!" + "4", each with its <turn|> */
    eft_free(text), eft_free(out), eft_free(err), eft_free(args);

    /* the second run reuses the cache; --debug shows the tokens */
    args = eft_asprintf("preprocess %s --sequence-len=64 --debug --debug-num-examples 1", cfg);
    code = test_run_eft(args, &out, &err);
    if (code) fail_msg("exit %d: %s", code, err);
    assert_contains(err, "reused: nothing tokenized");
    assert_contains(err, "4 rows -> 4 samples, kept 2"); /* counts kept with the cache */
    assert_contains(out, "tokens as text(label, id); label -100: not trained");
    assert_contains(out, "sample 0: ");
    assert_contains(out, "<bos>(-100, 2) <|turn>(-100, 260)");
    assert_contains(out, "<turn|>(261, 261) \\n(-100, 14)");
    assert_true(strstr(out, "sample 1:") == NULL);
    eft_free(out), eft_free(err), eft_free(args);

    /* without the override: sequence_len 256 keeps the alpaca rows, a new cache key */
    args = eft_asprintf("preprocess %s", cfg);
    code = test_run_eft(args, &out, &err);
    if (code) fail_msg("exit %d: %s", code, err);
    assert_contains(err, "2 rows -> 2 samples, kept 2");
    assert_contains(err, "(written)");
    eft_free(out), eft_free(err), eft_free(args);
    eft_free(dump), eft_free(cfg);
}

static void test_errors(void **state) {
    ds_fx *f = *state;
    char *cfg = write_config(f, "");
    char *chat = eft_path_join(f->dir, "chat.jsonl");
    test_write_file(chat, "{\"conversations\": []}\n{\"conversations\": [}\n");
    char *args = eft_asprintf("preprocess %s", cfg);
    char *err;
    assert_int_equal(test_run_eft(args, NULL, &err), 1);
    assert_contains(err, "eft: error: ");
    assert_contains(err, "chat.jsonl:2:");
    assert_contains(err, "invalid JSON on this line");
    eft_free(err);
    test_write_file(chat, "{\"conversations\": [{\"from\": \"robot\", \"value\": \"x\"}]}\n");
    assert_int_equal(test_run_eft(args, NULL, &err), 1);
    assert_contains(err, "chat.jsonl:1: conversations[0]: unknown role \"robot\"");
    eft_free(err);
    eft_free(args);
    eft_free(cfg);
    /* a Parquet dataset, e.g. FineTome's files */
    char *pq = ds_test_file(f->dir, "hub/data/train-00000-of-00001.parquet", "PAR1");
    char *hub = eft_path_join(f->dir, "hub");
    char *yaml = eft_asprintf("base_model: %s\nlearning_rate: 0.0002\ndatasets: [{path: %s, type: "
                              "completion}]\n",
                              f->model, hub);
    cfg = ds_test_file(f->dir, "pq.yaml", yaml);
    args = eft_asprintf("preprocess %s", cfg);
    assert_int_equal(test_run_eft(args, NULL, &err), 1);
    assert_contains(err, "train-00000-of-00001.parquet: Parquet files are not supported yet");
    eft_free(err);
    assert_int_equal(test_run_eft("preprocess", NULL, &err), 1);
    assert_contains(err, "expected a config file");
    eft_free(err);
    eft_free(args), eft_free(cfg), eft_free(yaml), eft_free(hub), eft_free(pq), eft_free(chat);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_to_end),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, ds_fx_teardown);
}
