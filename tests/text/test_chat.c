/* test_chat.c: chat templates and labels, checked by hand: the spec's Gemma 4 example and its
 * labels, <turn|> trained after every assistant turn, the whitespace Jinja's trim removes, the
 * reasoning channel, the errors (unknown role, empty conversation, gemma3's alternation),
 * recognising templates, and labelling time linear in the number of turns. The exhaustive
 * comparison with Axolotl is test_chat_cases.c. Tests that need a tokenizer skip without
 * ../shared.
 */
#include "support/test.h"

#include "support/gemma4_tokenizer.h"

#include "base/err.h"
#include "base/fs.h"
#include "text/chat.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define SPEC_TEXT                                                                                  \
    "<bos><|turn>system\nYou are helpful.<turn|>\n<|turn>user\nHi!<turn|>\n<|turn>model\nHello!"   \
    "<turn|>\n"

static const chat_msg spec_msgs[] = {
    {"system", "You are helpful.", -1}, {"user", "Hi!", -1}, {"assistant", "Hello!", -1}};

static tok_tokenizer *gemma4_tok(void) {
    char *dir = test_gemma4_tokenizer_path();
    tok_tokenizer *t = tok_load(dir);
    if (!t) print_error("%s\n", eft_err_msg());
    assert_non_null(t);
    eft_free(dir);
    return t;
}

static void assert_render(chat_template_kind k, const chat_msg *m, int n, bool gen,
                          const char *want) {
    char *s = chat_render(k, m, n, gen);
    if (!s) print_error("%s\n", eft_err_msg());
    assert_non_null(s);
    assert_string_equal(s, want);
    eft_free(s);
}

static void assert_render_fails(chat_template_kind k, const chat_msg *m, int n, const char *msg) {
    eft_err_clear();
    assert_null(chat_render(k, m, n, false));
    assert_contains(eft_err_msg(), msg);
}

static void test_gemma4_spec_example(void **state) {
    assert_render(CHAT_GEMMA4, spec_msgs, 3, false, SPEC_TEXT);
    assert_render(CHAT_GEMMA4, spec_msgs, 3, true,
                  SPEC_TEXT "<|turn>model\n<|channel>thought\n<channel|>");
    /* developer first is the system turn too; without either there is none */
    const chat_msg dev[] = {{"developer", " Be brief. ", -1}, {"user", "Hi", -1}};
    assert_render(CHAT_GEMMA4, dev, 2, false,
                  "<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nHi<turn|>\n");
    assert_render(CHAT_GEMMA4, dev + 1, 1, false, "<bos><|turn>user\nHi<turn|>\n");
}

static void test_gemma4_assistant_runs_and_tools(void **state) {
    /* consecutive assistant messages share one header; tool messages render nothing and do not
     * break the run */
    const chat_msg m[] = {{"user", "Go", -1},
                          {"assistant", "One.", -1},
                          {"tool", "out", -1},
                          {"assistant", "Two.", -1},
                          {"system", "late rule", -1}};
    assert_render(CHAT_GEMMA4, m, 5, false,
                  "<bos><|turn>user\nGo<turn|>\n<|turn>model\nOne.<turn|>\nTwo.<turn|>\n"
                  "<|turn>system\nlate rule<turn|>\n");
}

static void test_gemma4_trim_and_thinking(void **state) {
    /* Python's str.strip(): U+3000, U+00A0, U+2028, U+0085, U+001C go; U+200B stays */
    const chat_msg m[] = {
        {"user", "\xe3\x80\x80\xc2\xa0 wide \xe2\x80\xa8", -1},
        {"assistant", "\xc2\x85\x1c kept\xe2\x80\x8b ", -1},
        {"user", "q", -1},
        {"assistant", " A <|channel>thought\nhidden<channel|> B <|channel>open", -1},
        {"user", "q", -1},
        {"assistant", "<|channel>only thinking<channel|>  ", -1},
    };
    assert_render(CHAT_GEMMA4, m, 6, false,
                  "<bos><|turn>user\nwide<turn|>\n<|turn>model\nkept\xe2\x80\x8b<turn|>\n"
                  "<|turn>user\nq<turn|>\n<|turn>model\nA  B<turn|>\n<|turn>user\nq<turn|>\n"
                  "<|turn>model\n<turn|>\n");
    /* strip_thinking applies to assistant content only */
    const chat_msg u[] = {{"user", "<|channel>x<channel|>y", -1}};
    assert_render(CHAT_GEMMA4, u, 1, false, "<bos><|turn>user\n<|channel>x<channel|>y<turn|>\n");
}

static void test_gemma3_and_chatml(void **state) {
    const chat_msg m[] = {
        {"system", " Be nice. ", -1}, {"user", " Hi ", -1}, {"assistant", " Hey ", -1}};
    assert_render(CHAT_GEMMA3, m, 3, true,
                  "<bos><start_of_turn>user\n Be nice. \n\nHi<end_of_turn>\n<start_of_turn>model\n"
                  "Hey<end_of_turn>\n<start_of_turn>model\n");
    assert_render(CHAT_GEMMA3, m, 1, false, "<bos>"); /* a lone system message vanishes */
    assert_render(CHAT_CHATML, m, 3, true,
                  "<|im_start|>system\n Be nice. <|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n"
                  "<|im_start|>assistant\n Hey <|im_end|>\n<|im_start|>assistant\n");
}

static void test_errors(void **state) {
    const chat_msg bad_role[] = {{"user", "a", -1}, {"gpt", "b", -1}};
    assert_render_fails(CHAT_GEMMA4, bad_role, 2, "message 2: unknown role \"gpt\"");
    assert_render_fails(CHAT_GEMMA4, bad_role, 0, "empty conversation");
    const chat_msg two_users[] = {{"system", "s", -1}, {"user", "a", -1}, {"user", "b", -1}};
    assert_render_fails(CHAT_GEMMA3, two_users, 3, "message 3 (user): the gemma3 template");
    assert_render(CHAT_GEMMA3, two_users + 1, 1, false,
                  "<bos><start_of_turn>user\na<end_of_turn>\n");
    const chat_msg dev_first[] = {{"developer", "d", -1}, {"user", "a", -1}};
    assert_render_fails(CHAT_GEMMA3, dev_first, 2, "roles to alternate");
    const chat_msg no_content[] = {{"user", NULL, -1}};
    assert_render_fails(CHAT_CHATML, no_content, 1, "has no content");
    assert_render(CHAT_GEMMA4, no_content, 1, false, "<bos><|turn>user\n<turn|>\n");

    chat_template_kind k;
    assert_int_equal(chat_template_by_name("gemma4_unified", &k), 0);
    assert_int_equal(k, CHAT_GEMMA4);
    assert_int_equal(chat_template_by_name("llama3", &k), -1);
    assert_contains(eft_err_msg(), "gemma4 (or gemma4_unified, the same), gemma3 and chatml");
    chat_eos_mode mode;
    assert_int_equal(chat_eos_mode_by_name("last", &mode), 0);
    assert_int_equal(mode, CHAT_EOS_LAST);
    assert_int_equal(chat_eos_mode_by_name("always", &mode), -1);
}

static void test_detect(void **state) {
    chat_template_kind k;
    assert_int_equal(chat_template_detect("{{ messages }}", "x/chat_template.jinja", &k), -1);
    assert_contains(eft_err_msg(), "x/chat_template.jinja: the checkpoint's chat template");
    assert_contains(eft_err_msg(), "Set chat_template to gemma4, gemma3 or chatml");

    char *path = test_shared_or_skip("data/chat-templates/gemma4.jinja");
    char *src = eft_read_file(path, NULL);
    assert_non_null(src);
    k = CHAT_CHATML;
    assert_int_equal(chat_template_detect(src, path, &k), 0);
    assert_int_equal(k, CHAT_GEMMA4);
    /* CRLF line ends and surrounding blank lines are the same template */
    size_t n = strlen(src);
    char *crlf = eft_malloc(2 * n + 8), *w = crlf;
    w += sprintf(w, "\r\n  ");
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\n') *w++ = '\r';
        *w++ = src[i];
    }
    strcpy(w, "\n\n");
    k = CHAT_CHATML;
    assert_int_equal(chat_template_detect(crlf, path, &k), 0);
    assert_int_equal(k, CHAT_GEMMA4);
    /* one character changed is another template */
    char *p = strstr(src, "<|turn>model\\n");
    assert_non_null(p);
    p[8] = 'M';
    assert_int_equal(chat_template_detect(src, path, &k), -1);
    assert_contains(eft_err_msg(), "a Gemma 4 template, but not the version eft renders");
    eft_free(crlf);
    eft_free(src);
    eft_free(path);
}

static void test_detect_checkpoint(void **state) {
    chat_template_kind k = CHAT_CHATML;
    char *g4 = test_gemma4_tokenizer_path(); /* has chat_template.jinja */
    assert_int_equal(chat_template_from_checkpoint(g4, &k), 0);
    assert_int_equal(k, CHAT_GEMMA4);
    char *g3 = test_shared_or_skip("data/gemma3-tokenizer"); /* tokenizer_config.json's */
    assert_int_equal(chat_template_from_checkpoint(g3, &k), 0);
    assert_int_equal(k, CHAT_GEMMA3);
    char *dir = test_tmpdir("chat_ckpt");
    assert_int_equal(chat_template_from_checkpoint(dir, &k), -1);
    assert_contains(eft_err_msg(), "the checkpoint has no chat template");
    char *cfg = eft_path_join(dir, "tokenizer_config.json");
    test_write_file(cfg, "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}, "
                         "{\"name\": \"default\", \"template\": \"{{ bos_token }}\"}]}");
    assert_int_equal(chat_template_from_checkpoint(dir, &k), -1);
    assert_contains(eft_err_msg(), "tokenizer_config.json: the checkpoint's chat template");
    assert_contains(eft_err_msg(), "is not a template eft renders");
    eft_free(cfg);
    test_tmpdir_cleanup(dir);
    eft_free(g3);
    eft_free(g4);
}

/* Tokenizes m with o (NULL: defaults) into fresh lists; returns the labels (owned). */
static int32_t *tokenize(const tok_tokenizer *t, chat_template_kind k, const chat_msg *m, int n,
                         const chat_opts *o, tok_ids *ids) {
    chat_opts def = chat_opts_default();
    int32_t eot = tok_id(t, "<turn|>"), *labels = NULL;
    def.eot_ids = &eot;
    def.n_eot = 1;
    size_t cap = 0;
    if (chat_tokenize(t, k, m, n, o ? o : &def, ids, &labels, &cap) < 0)
        print_error("%s\n", eft_err_msg());
    assert_non_null(labels);
    assert_true(cap >= ids->n);
    return labels;
}

/* The trained tokens, decoded. */
static char *trained_text(const tok_tokenizer *t, const tok_ids *ids, const int32_t *labels) {
    int32_t *kept = eft_malloc(ids->n * sizeof *kept);
    size_t n = 0;
    for (size_t i = 0; i < ids->n; i++) {
        assert_true(labels[i] == CHAT_IGNORE || labels[i] == ids->ids[i]);
        if (labels[i] != CHAT_IGNORE) kept[n++] = ids->ids[i];
    }
    char *s = tok_decode(t, kept, n, false);
    eft_free(kept);
    return s;
}

static void test_spec_labels(void **state) {
    tok_tokenizer *t = gemma4_tok();
    tok_ids ids = {0};
    int32_t *labels = tokenize(t, CHAT_GEMMA4, spec_msgs, 3, NULL, &ids);
    char *text = tok_decode(t, ids.ids, ids.n, false);
    assert_string_equal(text, SPEC_TEXT);
    char *got = trained_text(t, &ids, labels);
    assert_string_equal(got, "Hello!<turn|>");
    /* exactly the tail before the final "\n": ... <|turn> model \n [Hello !] [<turn|>] \n */
    size_t n = ids.n, first = 0;
    while (labels[first] == CHAT_IGNORE) first++;
    for (size_t i = first; i < n - 1; i++) assert_int_equal(labels[i], ids.ids[i]);
    assert_int_equal(labels[n - 1], CHAT_IGNORE);
    assert_int_equal(ids.ids[n - 2], 106);
    assert_int_equal(ids.ids[n - 1], 107);
    assert_int_equal(ids.ids[first - 1], 107);
    assert_int_equal(ids.ids[first - 3], 105);
    assert_int_equal(ids.ids[0], 2);
    eft_free(got);
    eft_free(text);
    eft_free(labels);
    tok_ids_free(&ids);
    tok_free(t);
}

static void test_turn_end_trained_per_assistant_turn(void **state) {
    tok_tokenizer *t = gemma4_tok();
    const chat_msg m[] = {{"user", "What is 2+2?", -1}, {"assistant", "4.", -1},
                          {"user", "And 3+3?", -1},     {"assistant", "  6, of course.  ", -1},
                          {"user", "Bye", -1},          {"assistant", "Bye!", -1}};
    tok_ids ids = {0};
    int32_t *labels = tokenize(t, CHAT_GEMMA4, m, 6, NULL, &ids);
    char *got = trained_text(t, &ids, labels);
    assert_string_equal(got, "4.<turn|>6, of course.<turn|>Bye!<turn|>");
    int ends = 0, trained_ends = 0;
    for (size_t i = 0; i < ids.n; i++)
        if (ids.ids[i] == 106) ends++, trained_ends += labels[i] == 106;
    assert_int_equal(ends, 6);
    assert_int_equal(trained_ends, 3);

    /* appending a second conversation leaves the first one's labels alone */
    size_t n1 = ids.n, cap = n1;
    int32_t eot = 106;
    chat_opts o = chat_opts_default();
    o.eot_ids = &eot;
    o.n_eot = 1;
    o.train_on_inputs = true;
    assert_int_equal(chat_tokenize(t, CHAT_GEMMA4, m, 2, &o, &ids, &labels, &cap), 0);
    assert_true(cap >= ids.n);
    char *first = trained_text(t, &(tok_ids){.ids = ids.ids, .n = n1}, labels);
    assert_string_equal(first, got);
    tok_ids tail = {.ids = ids.ids + n1, .n = ids.n - n1};
    char *second = trained_text(t, &tail, labels + n1);
    assert_string_equal(second, "What is 2+2?<turn|>4.<turn|>");
    eft_free(second);
    eft_free(first);
    eft_free(got);
    eft_free(labels);
    tok_ids_free(&ids);
    tok_free(t);
}

static void test_opts(void **state) {
    tok_tokenizer *t = gemma4_tok();
    const char *names[] = {"<turn|>", "<eos>", "</turn>"};
    int32_t ids[3];
    assert_int_equal(chat_eot_ids(t, names, 2, ids), 0);
    assert_int_equal(ids[0], 106);
    assert_int_equal(ids[1], 1);
    assert_int_equal(chat_eot_ids(t, names, 3, ids), -1);
    assert_contains(eft_err_msg(), "eot_tokens: \"</turn>\" is ");
    /* this tokenizer's eos is <turn|>: it cannot be trained by two different rules */
    chat_opts o = chat_opts_default();
    o.eot_ids = ids;
    o.n_eot = 1;
    o.train_on_eot = CHAT_EOS_NONE;
    assert_int_equal(chat_opts_check(t, &o), -1);
    assert_contains(eft_err_msg(), "train_on_eos is turn but train_on_eot is none");
    tok_ids out = {0};
    int32_t *labels = NULL;
    size_t cap = 0;
    assert_int_equal(chat_tokenize(t, CHAT_GEMMA4, spec_msgs, 3, &o, &out, &labels, &cap), -1);
    assert_int_equal(out.n, 0);
    /* an error in the conversation leaves the lists alone too */
    o.train_on_eot = CHAT_EOS_TURN;
    const chat_msg bad[] = {{"user", "x", -1}, {"bot", "y", -1}};
    assert_int_equal(chat_tokenize(t, CHAT_GEMMA4, bad, 2, &o, &out, &labels, &cap), -1);
    assert_contains(eft_err_msg(), "message 2: unknown role \"bot\"");
    assert_int_equal(out.n, 0);
    /* messages keep the numbers the data gave them when the system message is dropped */
    const chat_msg dropped[] = {{"system", "s", -1}, {"user", "x", -1}, {"bot", "y", -1}};
    o.drop_system_message = true;
    assert_int_equal(chat_tokenize(t, CHAT_GEMMA4, dropped, 3, &o, &out, &labels, &cap), -1);
    assert_contains(eft_err_msg(), "message 3: unknown role \"bot\"");
    assert_int_equal(chat_tokenize(t, CHAT_GEMMA4, dropped, 1, &o, &out, &labels, &cap), -1);
    assert_contains(eft_err_msg(), "empty conversation");
    assert_int_equal(out.n, 0);
    eft_free(labels);
    tok_ids_free(&out);
    tok_free(t);
}

/* This thread's CPU time: what other processes on a shared machine do does not count. */
static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A conversation of `turns` user/assistant pairs with varied text; texts[] holds the strings. */
static chat_msg *long_chat(int turns, char (**texts)[64]) {
    chat_msg *m = eft_calloc((size_t)(2 * turns), sizeof *m);
    char(*text)[64] = eft_calloc((size_t)(2 * turns), sizeof *text);
    for (int i = 0; i < 2 * turns; i++) {
        snprintf(text[i], sizeof text[i], "%s number %d says %x, then stops.",
                 i % 2 ? "Answer" : "Question", i, i * 2654435761u);
        m[i] = (chat_msg){i % 2 ? "assistant" : "user", text[i], -1};
    }
    *texts = text;
    return m;
}

/* Seconds to label m[0..n), checking that each assistant turn's <turn|> is trained. */
static double label_time(const tok_tokenizer *t, const chat_msg *m, int n) {
    tok_ids ids = {0};
    double t0 = seconds();
    int32_t *labels = tokenize(t, CHAT_GEMMA4, m, n, NULL, &ids);
    double dt = seconds() - t0;
    int trained_ends = 0;
    for (size_t i = 0; i < ids.n; i++) trained_ends += labels[i] == 106;
    assert_int_equal(trained_ends, n / 2);
    eft_free(labels);
    tok_ids_free(&ids);
    return dt;
}

static void test_linear_time(void **state) {
    tok_tokenizer *t = gemma4_tok();
    char(*small_text)[64], (*big_text)[64];
    const int small = 250, big = 2000; /* 8 times as many turns: linear 8x, quadratic 64x */
    chat_msg *ms = long_chat(small, &small_text), *mb = long_chat(big, &big_text);
    double ts = 1e30, tb = 1e30; /* best of 7, interleaved, against a busy machine */
    for (int rep = 0; rep < 7; rep++) {
        double a = label_time(t, ms, 2 * small), b = label_time(t, mb, 2 * big);
        ts = a < ts ? a : ts;
        tb = b < tb ? b : tb;
    }
    print_message("labelling %d vs %d messages: %.2f ms vs %.2f ms (x%.1f)\n", 2 * small, 2 * big,
                  1e3 * ts, 1e3 * tb, tb / ts);
    assert_true(tb < 20 * ts);
    eft_free(big_text);
    eft_free(mb);
    eft_free(small_text);
    eft_free(ms);
    tok_free(t);
}

/* enable_thinking (chat_template_kwargs), as jinja2 renders ../shared's gemma4.jinja with it. */
static void test_gemma4_thinking(void **state) {
    chat_opts o = chat_opts_default();
    o.enable_thinking = true;
    chat_msg a[] = {{"user", "Hi", -1}, {"assistant", "Hello", -1}};
    char *s = chat_render_opts(CHAT_GEMMA4, a, 2, false, &o);
    assert_string_equal(s, "<bos><|turn>system\n<|think|>\n<turn|>\n<|turn>user\nHi<turn|>\n"
                           "<|turn>model\nHello<turn|>\n");
    eft_free(s);
    s = chat_render_opts(CHAT_GEMMA4, a, 2, true, &o);
    assert_string_equal(s, "<bos><|turn>system\n<|think|>\n<turn|>\n<|turn>user\nHi<turn|>\n"
                           "<|turn>model\nHello<turn|>\n<|turn>model\n");
    eft_free(s);
    chat_msg b[] = {{"system", " Be brief. ", -1}, {"user", "Hi", -1}};
    s = chat_render_opts(CHAT_GEMMA4, b, 2, true, &o);
    assert_string_equal(s, "<bos><|turn>system\n<|think|>\nBe brief.<turn|>\n<|turn>user\nHi"
                           "<turn|>\n<|turn>model\n");
    eft_free(s);
    /* Thinking off (the default): the generation prompt carries the empty thought channel. */
    s = chat_render_opts(CHAT_GEMMA4, b, 2, true, NULL);
    assert_string_equal(s, "<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nHi<turn|>\n"
                           "<|turn>model\n<|channel>thought\n<channel|>");
    eft_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemma4_thinking),
        cmocka_unit_test(test_gemma4_spec_example),
        cmocka_unit_test(test_gemma4_assistant_runs_and_tools),
        cmocka_unit_test(test_gemma4_trim_and_thinking),
        cmocka_unit_test(test_gemma3_and_chatml),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_detect_checkpoint),
        cmocka_unit_test(test_spec_labels),
        cmocka_unit_test(test_turn_end_trained_per_assistant_turn),
        cmocka_unit_test(test_opts),
        cmocka_unit_test(test_linear_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
