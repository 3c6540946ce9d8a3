/* test_chat_cases.c: eft's chat templates and labels against Hugging Face's Jinja rendering and
 * Axolotl's chat_template strategy, case by case (tests/data_files/chat/cases.jsonl, written by
 * tools/make_chat_labels.py): the rendered text with and without the generation prompt, the
 * token ids, and every label. gemma4 cases use the Gemma-4-style test tokenizer; gemma3 and
 * chatml cases ../shared's Gemma 3 tokenizer. Skipped without ../shared.
 */
#include "support/test.h"

#include "support/gemma4_tokenizer.h"

#include "base/err.h"
#include "io/json.h"
#include "io/jsonl.h"
#include "text/chat.h"

#include <stdio.h>
#include <string.h>

#define CASES     EFT_SOURCE_DIR "/tests/data_files/chat/cases.jsonl"
#define MAX_MSGS  64
#define MAX_ROLES 8

static tok_tokenizer *load(char *dir) {
    tok_tokenizer *t = tok_load(dir);
    if (!t) print_error("%s\n", eft_err_msg());
    assert_non_null(t);
    eft_free(dir);
    return t;
}

static const char *str(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static chat_eos_mode mode(const cJSON *v, chat_eos_mode unset) {
    chat_eos_mode m = unset;
    if (cJSON_IsString(v)) assert_int_equal(chat_eos_mode_by_name(v->valuestring, &m), 0);
    return m;
}

/* Asserts got[0..n) == want (a JSON array), naming the case and the first difference. */
static void assert_ints(const char *name, const char *what, const int32_t *got, size_t n,
                        const cJSON *want) {
    size_t wn = (size_t)cJSON_GetArraySize(want), i = 0;
    const cJSON *w = want->child;
    for (; i < n && i < wn; i++, w = w->next)
        if (got[i] != w->valueint) break;
    if (i < n || i < wn || n != wn) {
        print_error("%s: %s differ at %zu (eft %d, reference %d; lengths %zu, %zu)\n", name, what,
                    i, i < n ? got[i] : -1, w ? w->valueint : -1, n, wn);
        fail();
    }
}

static void check_case(const cJSON *c, tok_tokenizer *g4, tok_tokenizer *g3) {
    const char *name = str(c, "name");
    chat_template_kind k;
    assert_int_equal(chat_template_by_name(str(c, "template"), &k), 0);
    tok_tokenizer *t = strcmp(str(c, "tokenizer"), "gemma4") == 0 ? g4 : g3;

    chat_msg m[MAX_MSGS];
    int n = 0;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, cJSON_GetObjectItemCaseSensitive(c, "messages")) {
        assert_true(n < MAX_MSGS);
        const cJSON *train = cJSON_GetObjectItemCaseSensitive(msg, "train");
        m[n++] =
            (chat_msg){str(msg, "role"), str(msg, "content"), train ? cJSON_IsTrue(train) : -1};
    }

    const cJSON *err = cJSON_GetObjectItemCaseSensitive(c, "error");
    if (err) { /* the Jinja refused it: eft must too */
        eft_err_clear();
        assert_null(chat_render(k, m, n, false));
        if (!strstr(eft_err_msg(), err->valuestring)) {
            print_error("%s: eft says \"%s\", Jinja \"%s\"\n", name, eft_err_msg(),
                        err->valuestring);
            fail();
        }
        return;
    }
    for (int gen = 0; gen < 2; gen++) {
        char *text = chat_render(k, m, n, gen);
        const char *want = str(c, gen ? "text_gen" : "text");
        if (!text || strcmp(text, want) != 0) {
            print_error("%s: rendering differs\n  eft:  %s\n  Jinja: %s\n", name,
                        text ? text : eft_err_msg(), want);
            fail();
        }
        eft_free(text);
    }

    const cJSON *o = cJSON_GetObjectItemCaseSensitive(c, "opts"), *v;
    chat_opts opts = chat_opts_default();
    const char *roles[MAX_ROLES], *eot_names[MAX_ROLES];
    int32_t eot[MAX_ROLES];
    opts.n_roles_to_train = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(o, "roles_to_train")) {
        assert_true(opts.n_roles_to_train < MAX_ROLES);
        roles[opts.n_roles_to_train++] = v->valuestring;
    }
    opts.roles_to_train = roles;
    opts.train_on_eos = mode(cJSON_GetObjectItemCaseSensitive(o, "train_on_eos"), CHAT_EOS_TURN);
    opts.train_on_eot =
        mode(cJSON_GetObjectItemCaseSensitive(o, "train_on_eot"), opts.train_on_eos);
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(o, "eot_tokens")) {
        assert_true(opts.n_eot < MAX_ROLES);
        eot_names[opts.n_eot++] = v->valuestring;
    }
    assert_int_equal(chat_eot_ids(t, eot_names, opts.n_eot, eot), 0);
    opts.eot_ids = eot;
    opts.drop_system_message =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "drop_system_message"));
    opts.train_on_inputs = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "train_on_inputs"));

    tok_ids ids = {0};
    int32_t *labels = NULL;
    size_t cap = 0;
    if (cJSON_GetObjectItemCaseSensitive(c, "tokenize_error")) {
        assert_int_equal(chat_tokenize(t, k, m, n, &opts, &ids, &labels, &cap), -1);
        assert_int_equal(ids.n, 0);
        return;
    }
    if (chat_tokenize(t, k, m, n, &opts, &ids, &labels, &cap) < 0) {
        print_error("%s: %s\n", name, eft_err_msg());
        fail();
    }
    assert_ints(name, "ids", ids.ids, ids.n, cJSON_GetObjectItemCaseSensitive(c, "ids"));
    assert_ints(name, "labels", labels, ids.n, cJSON_GetObjectItemCaseSensitive(c, "labels"));
    eft_free(labels);
    tok_ids_free(&ids);
}

static void test_cases(void **state) {
    tok_tokenizer *g4 = load(test_gemma4_tokenizer_path());
    tok_tokenizer *g3 = load(test_shared_or_skip("data/gemma3-tokenizer"));
    eft_jsonl r;
    assert_int_equal(eft_jsonl_open(&r, CASES), 0);
    int count[3] = {0}, labelled = 0;
    cJSON *c;
    while ((c = eft_jsonl_next(&r))) {
        check_case(c, g4, g3);
        eft_err_clear();
        chat_template_kind k;
        assert_int_equal(chat_template_by_name(str(c, "template"), &k), 0);
        count[k]++;
        labelled += cJSON_GetObjectItemCaseSensitive(c, "labels") != NULL;
        cJSON_Delete(c);
    }
    assert_string_equal(eft_err_msg(), "");
    eft_jsonl_close(&r);
    print_message("checked %d gemma4, %d gemma3, %d chatml cases (%d with labels)\n",
                  count[CHAT_GEMMA4], count[CHAT_GEMMA3], count[CHAT_CHATML], labelled);
    assert_true(count[CHAT_GEMMA4] >= 30 && count[CHAT_GEMMA3] >= 5 && count[CHAT_CHATML] >= 5);
    tok_free(g3);
    tok_free(g4);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cases)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
