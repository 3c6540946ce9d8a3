/* test_ds_chat.c: chat_template rows mapped to the template engine: OpenAI-style and ShareGPT
 * (FineTome) rows give the same tokens, the roles map and its defaults, roles_to_train through
 * the map, per-turn training flags, a "system" column, content parts, eot_tokens (default: the
 * eos token; each must be one token), tokenizer_default and its fallback, and the errors for an
 * unknown role, missing messages, tools and reasoning traces. Expected ids and labels are built
 * here from the byte-level test tokenizer and the Gemma 4 layout that text/chat.h documents. */
#include "data/ds_test.h"

#include "data/ds_format.h"

#include <unistd.h>

static int setup(void **state) {
    *state = ds_fx_open("ds_chat");
    return 0;
}

/* Formats rows with entry `{path, type: chat_template, <entry>}`. */
static int run(ds_fx *f, const char *top, const char *entry, const char *data, ds_samples *out) {
    char *e = eft_asprintf("type: chat_template, %s", entry);
    int rc = ds_test_format_rows(f, "chat.jsonl", top, e, data, out, NULL);
    eft_free(e);
    return rc;
}

typedef struct seq {
    int32_t ids[512], labels[512];
    int n;
} seq;

static void text(seq *s, const char *t, bool train) {
    for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
        s->ids[s->n] = tb(*p);
        s->labels[s->n++] = train ? tb(*p) : -100;
    }
}
static void id(seq *s, int32_t v, bool train) {
    s->ids[s->n] = v;
    s->labels[s->n++] = train ? v : -100;
}
/* One Gemma 4 turn: <|turn>role\ncontent<turn|>\n, content and <turn|> trained as asked. */
static void turn(seq *s, const char *role, const char *content, bool train, bool train_eot) {
    id(s, T_TURN, false);
    text(s, role, false);
    text(s, "\n", false);
    text(s, content, train);
    id(s, T_ENDTURN, train_eot);
    text(s, "\n", false);
}

static void check(const ds_samples *got, int64_t i, const seq *want) {
    if (ds_len(got, i) != want->n)
        fail_msg("sample %lld: %lld tokens, expected %d", (long long)i, (long long)ds_len(got, i),
                 want->n);
    for (int k = 0; k < want->n; k++) {
        int64_t t = got->off[i] + k;
        if (got->ids[t] != want->ids[k] || ds_label(got, t) != want->labels[k])
            fail_msg("sample %lld token %d: id %d label %d, expected id %d label %d", (long long)i,
                     k, got->ids[t], ds_label(got, t), want->ids[k], want->labels[k]);
    }
}

#define GEMMA4 "chat_template: gemma4\neot_tokens: [\"<turn|>\"]"

static void test_openai_and_sharegpt(void **state) {
    ds_fx *f = *state;
    seq want = {0};
    id(&want, T_BOS, false);
    turn(&want, "system", "Be kind.", false, false);
    turn(&want, "user", "Hi", false, false);
    turn(&want, "model", "Hello", true, true);
    ds_samples s;
    if (run(f, GEMMA4, "roles_to_train: [assistant]",
            "{\"messages\": [{\"role\": \"system\", \"content\": \"Be kind.\"}, {\"role\": "
            "\"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello\"}]}\n",
            &s))
        fail_msg("%s", eft_err_msg());
    check(&s, 0, &want);
    ds_samples_free(&s);
    /* FineTome's layout: conversations with from/value and human/gpt roles */
    if (run(f, GEMMA4,
            "field_messages: conversations, message_property_mappings: {role: from, content: "
            "value}",
            "{\"conversations\": [{\"from\": \"system\", \"value\": \"Be kind.\"}, {\"from\": "
            "\"human\", \"value\": \"Hi\"}, {\"from\": \"gpt\", \"value\": \"Hello\"}]}\n",
            &s))
        fail_msg("%s", eft_err_msg());
    check(&s, 0, &want);
    ds_samples_free(&s);
    /* the turns saved as a JSON string, a "system" column, content parts joined */
    if (run(f, GEMMA4, "roles_to_train: [gpt]",
            "{\"system\": \"Be kind.\", \"messages\": \"[{\\\"role\\\": \\\"human\\\", "
            "\\\"content\\\": \\\"Hi\\\"}, {\\\"role\\\": \\\"assistant\\\", \\\"content\\\": "
            "[{\\\"type\\\": \\\"text\\\", \\\"text\\\": \\\"Hel\\\"}, {\\\"text\\\": "
            "\\\"lo\\\"}]}]\"}\n",
            &s))
        fail_msg("%s", eft_err_msg());
    check(&s, 0, &want);
    ds_samples_free(&s);
}

static void test_roles_and_training_flags(void **state) {
    ds_fx *f = *state;
    ds_samples s;
    /* a roles map replaces the defaults; roles_to_train go through it */
    const char *row = "{\"messages\": [{\"role\": \"person\", \"content\": \"Q\"}, {\"role\": "
                      "\"bot\", \"content\": \"A\"}]}\n";
    if (run(f, GEMMA4, "roles: {user: [person], assistant: [bot]}, roles_to_train: [person]", row,
            &s))
        fail_msg("%s", eft_err_msg());
    seq want = {0};
    id(&want, T_BOS, false);
    turn(&want, "user", "Q", true, true);
    turn(&want, "model", "A", false, false);
    check(&s, 0, &want);
    ds_samples_free(&s);
    assert_int_equal(run(f, GEMMA4, "roles: {user: [person], assistant: [bot]}",
                         "{\"messages\": [{\"role\": \"human\", \"content\": \"Q\"}]}\n", &s),
                     -1);
    assert_contains(eft_err_msg(), "chat.jsonl:1: messages[0]: unknown role \"human\"");
    ds_samples_free(&s);
    assert_int_equal(run(f, GEMMA4, "roles_to_train: [assistant]", row, &s), -1);
    assert_contains(eft_err_msg(), "unknown role \"person\". Map it");
    ds_samples_free(&s);

    /* message_field_training overrides roles_to_train per turn */
    if (run(f, GEMMA4, "message_field_training: train",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Q\", \"train\": true}, "
            "{\"role\": \"assistant\", \"content\": \"A\", \"train\": false}, {\"role\": \"user\", "
            "\"content\": \"R\"}, {\"role\": \"assistant\", \"content\": \"B\", \"train\": "
            "null}]}\n",
            &s))
        fail_msg("%s", eft_err_msg());
    seq w2 = {0};
    id(&w2, T_BOS, false);
    turn(&w2, "user", "Q", true, true);
    turn(&w2, "model", "A", false, false);
    turn(&w2, "user", "R", false, false);
    turn(&w2, "model", "B", true, true);
    check(&s, 0, &w2);
    ds_samples_free(&s);
}

static void test_eot_tokens(void **state) {
    ds_fx *f = *state;
    ds_samples s;
    const char *row = "{\"messages\": [{\"role\": \"user\", \"content\": \"Q\"}, {\"role\": "
                      "\"assistant\", \"content\": \"A\"}]}\n";
    /* no eot_tokens: the eos token <eos> is the EOT, and Gemma 4 never writes it, so <turn|> is
     * not trained (issue #3754's trap) */
    if (run(f, "chat_template: gemma4", "", row, &s)) fail_msg("%s", eft_err_msg());
    seq want = {0};
    id(&want, T_BOS, false);
    turn(&want, "user", "Q", false, false);
    turn(&want, "model", "A", true, false);
    check(&s, 0, &want);
    ds_samples_free(&s);
    /* train_on_eot: none keeps <turn|> masked even with eot_tokens */
    if (run(f, GEMMA4, "train_on_eot: none", row, &s)) fail_msg("%s", eft_err_msg());
    check(&s, 0, &want);
    ds_samples_free(&s);
    assert_int_equal(run(f, "chat_template: gemma4\neot_tokens: [\"<turn|>x\"]", "", row, &s), -1);
    assert_contains(eft_err_msg(), "test.yaml:4:13: eot_tokens: ");
    assert_contains(eft_err_msg(), "eot_tokens");
    assert_contains(eft_err_msg(), "<turn|>x");
    ds_samples_free(&s);
    /* the eos token among the eot tokens with train_on_eos != train_on_eot: Axolotl's refusal */
    assert_int_equal(run(f, "chat_template: gemma4\neot_tokens: [\"<eos>\"]",
                         "train_on_eos: all, train_on_eot: turn", row, &s),
                     -1);
    assert_contains(eft_err_msg(), "datasets[0]");
    ds_samples_free(&s);
}

static void test_template_resolution(void **state) {
    ds_fx *f = *state;
    ds_samples s;
    const char *row = "{\"messages\": [{\"role\": \"user\", \"content\": \"Q\"}]}\n";
    /* tokenizer_default (the default) with no template in the checkpoint */
    assert_int_equal(run(f, "", "", row, &s), -1);
    assert_contains(eft_err_msg(), "the tokenizer has no chat template");
    ds_samples_free(&s);
    /* ... with a fallback */
    if (run(f, "chat_template: tokenizer_default_fallback_gemma4", "", row, &s))
        fail_msg("%s", eft_err_msg());
    assert_int_equal(s.ids[0], T_BOS);
    assert_int_equal(s.ids[1], T_TURN);
    ds_samples_free(&s);
    /* a checkpoint template that is not one eft renders */
    char *jinja = ds_test_file(f->model, "chat_template.jinja", "{{ messages }}");
    assert_int_equal(run(f, "", "", row, &s), -1);
    assert_contains(eft_err_msg(), "chat_template.jinja");
    ds_samples_free(&s);
    /* the real Gemma 4 template (from ../shared) is recognised */
    char *shared = test_shared_or_skip("data/chat-templates/gemma4.jinja");
    char *src = eft_read_file(shared, NULL);
    test_write_file(jinja, src);
    if (run(f, "eot_tokens: [\"<turn|>\"]", "", row, &s)) fail_msg("%s", eft_err_msg());
    seq want = {0};
    id(&want, T_BOS, false);
    turn(&want, "user", "Q", false, false);
    check(&s, 0, &want);
    ds_samples_free(&s);
    unlink(jinja);
    eft_free(src);
    eft_free(shared);
    eft_free(jinja);
}

static void test_bad_rows(void **state) {
    ds_fx *f = *state;
    ds_samples s;
    assert_int_equal(run(f, GEMMA4, "", "{\"msgs\": []}\n", &s), -1);
    assert_contains(eft_err_msg(), "chat.jsonl:1: messages: missing in this row");
    ds_samples_free(&s);
    assert_int_equal(run(f, GEMMA4, "", "{\"messages\": {\"role\": \"user\"}}\n", &s), -1);
    assert_contains(eft_err_msg(), "messages: expected a list of turns, found an object");
    ds_samples_free(&s);
    assert_int_equal(run(f, GEMMA4, "", "{\"messages\": [{\"content\": \"x\"}]}\n", &s), -1);
    assert_contains(eft_err_msg(), "messages[0]: role: missing");
    ds_samples_free(&s);
    assert_int_equal(
        run(f, GEMMA4, "", "{\"messages\": [{\"role\": \"user\", \"content\": 3}]}\n", &s), -1);
    assert_contains(eft_err_msg(), "messages[0].content: expected a string or a list of parts");
    ds_samples_free(&s);
    assert_int_equal(run(f, GEMMA4, "",
                         "{\"tools\": [{\"name\": \"f\"}], \"messages\": [{\"role\": \"user\", "
                         "\"content\": \"x\"}]}\n",
                         &s),
                     -1);
    assert_contains(eft_err_msg(), "tools: tool definitions are not supported yet");
    ds_samples_free(&s);
    assert_int_equal(run(f, GEMMA4, "",
                         "{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\", "
                         "\"reasoning_content\": \"hmm\"}]}\n",
                         &s),
                     -1);
    assert_contains(eft_err_msg(), "reasoning_content: reasoning traces are not rendered");
    ds_samples_free(&s);
    assert_int_equal(
        run(f, GEMMA4, "message_field_training_detail: spans", "{\"messages\": []}\n", &s), -1);
    assert_contains(eft_err_msg(), "message_field_training_detail: per-span training");
    ds_samples_free(&s);
    assert_int_equal(run(f, GEMMA4 "\nchat_template_kwargs: {tools_in_user: true}", "",
                         "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n", &s),
                     -1);
    assert_contains(eft_err_msg(), "chat_template_kwargs: eft's chat templates take one variable");
    ds_samples_free(&s);
    if (run(f, GEMMA4 "\nchat_template_kwargs: {enable_thinking: false}", "",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n", &s))
        fail_msg("%s", eft_err_msg());
    ds_samples_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_and_sharegpt),
        cmocka_unit_test(test_roles_and_training_flags),
        cmocka_unit_test(test_eot_tokens),
        cmocka_unit_test(test_template_resolution),
        cmocka_unit_test(test_bad_rows),
    };
    return cmocka_run_group_tests(tests, setup, ds_fx_teardown);
}
