/* test_tokenizer_cli.c: `eft tokenize`: JSONL in, {"ids": [...]} lines out, in order, with and
 * without --no-special; bad lines, bad UTF-8 and bad flags are user errors naming the line. */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"

#include <stdio.h>
#include <string.h>

/* A tiny tokenizer: spaces become "▁", "ab" merges, <s> opens every text. */
static const char *const tiny =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false}],"
    "\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"},"
    "\"pre_tokenizer\":null,\"decoder\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"
    "\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<s>\":{\"ids\":[1]}}},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"vocab\":{\"<unk>\":0,"
    "\"<s>\":1,\"a\":2,\"b\":3,\"ab\":4,\"\\u2581\":5},\"merges\":[\"a b\"]}}";

typedef struct fixture {
    char *dir, *tok, *in;
} fixture;

static fixture setup(const char *input) {
    fixture f;
    f.dir = test_tmpdir("tok_cli");
    f.tok = eft_path_join(f.dir, "tokenizer.json");
    f.in = eft_path_join(f.dir, "in.jsonl");
    test_write_file(f.tok, tiny);
    test_write_file(f.in, input);
    return f;
}

static void teardown(fixture *f) {
    eft_free(f->tok);
    eft_free(f->in);
    test_tmpdir_cleanup(f->dir);
}

static int run(const fixture *f, const char *flags, char **out, char **err) {
    char *args = eft_asprintf("tokenize --tokenizer '%s' %s < '%s'", f->tok, flags, f->in);
    int rc = test_run_eft(args, out, err);
    eft_free(args);
    return rc;
}

static void test_ids_out(void **state) {
    fixture f = setup("{\"text\": \"ab ab\"}\n{\"text\": \"\", \"other\": 1}\n"
                      "{\"text\": \"b<s>xa\"}\r\n{\"text\": \"a\\u00e9\"}");
    char *out, *err;
    assert_int_equal(run(&f, "", &out, &err), 0);
    assert_string_equal(out, "{\"ids\": [1, 4, 5, 4]}\n{\"ids\": [1]}\n{\"ids\": [1, 3, 1, 0, 2]}\n"
                             "{\"ids\": [1, 2, 0]}\n");
    eft_free(out);
    eft_free(err);
    assert_int_equal(run(&f, "--no-special", &out, &err), 0);
    assert_string_equal(out, "{\"ids\": [4, 5, 4]}\n{\"ids\": []}\n{\"ids\": [3, 1, 0, 2]}\n"
                             "{\"ids\": [2, 0]}\n");
    eft_free(out);
    eft_free(err);
    teardown(&f);
}

static void expect_error(const char *input, const char *flags, const char *phrase) {
    fixture f = setup(input);
    char *out, *err;
    assert_int_equal(run(&f, flags, &out, &err), 1);
    assert_contains(err, "eft: error: ");
    assert_contains(err, phrase);
    eft_free(out);
    eft_free(err);
    teardown(&f);
}

static void test_errors(void **state) {
    expect_error("{\"text\": \"a\"}\n{\"text\": 5}\n", "", "stdin:2: expected an object with a");
    expect_error("{\"text\": \"a\"}\n{\"text\": \"a\"}\n{\"text\": \n", "", "stdin:3:");
    expect_error("{\"text\": \"a\"}\n{\"text\": \"a\xFF\"}\n", "",
                 "stdin:2: text is not valid UTF-8 at byte 1");
    expect_error("{\"text\": \"a\"}\n\n{\"text\": \"a\"}\n", "", "stdin:2: empty line");
    expect_error("{\"text\": \"a\\u0000b\"}\n", "", "stdin:1: the line holds the character U+0000");
    expect_error("", "--bogus", "unknown argument \"--bogus\"");
    char *out, *err;
    assert_int_equal(test_run_eft("tokenize < /dev/null", &out, &err), 1);
    assert_contains(err, "--tokenizer PATH is required");
    eft_free(out);
    eft_free(err);
    assert_int_equal(test_run_eft("tokenize --tokenizer /nonexistent/tok < /dev/null", &out, &err),
                     1);
    assert_contains(err, "/nonexistent/tok");
    eft_free(out);
    eft_free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_out),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
