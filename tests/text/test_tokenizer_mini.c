/* test_tokenizer_mini.c: the tokenizer on small handmade tokenizer.json files: BPE rules (unk
 * fusing, byte fallback, dropped characters, ignore_merges, both merges spellings), the Split
 * pre-tokenizer's behaviours, decoding, tokenizer_config.json, and every malformed or unsupported
 * file eft must refuse with a message that says what is wrong.
 *
 * Expected ids and offsets are what Hugging Face tokenizers 0.23 gives for the same files (run
 * by hand when these tests were written); the quirks they show (a held-back <unk> placed after
 * later byte-fallback tokens, offsets that shift when a character is dropped) are HF's own.
 */
#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <string.h>

/* Model fields, vocab and merges of the small tokenizer; any may be overridden. */
typedef struct mini {
    const char *model_type, *options, *vocab, *merges, *normalizer, *pre_tokenizer, *decoder,
        *post_processor, *added;
} mini;

#define VOCAB                                                                                      \
    "{\"<unk>\":0,\"<s>\":1,\"a\":2,\"b\":3,\"\\u2581\":4,\"ab\":5,\"\\u2581ab\":6,\"c\":7,"       \
    "\"<0x78>\":8,\"<0xC3>\":9,\"<0xA9>\":10}"
#define ADDED                                                                                      \
    "[{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"                     \
    "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false}]"
#define POST                                                                                       \
    "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":"  \
    "0}},"                                                                                         \
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\","    \
    "\"ids\":[1],\"tokens\":[\"<s>\"]}}}"
#define DECODER                                                                                    \
    "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":"          \
    "\"\\u2581\"},"                                                                                \
    "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]}"

static char *mini_json(mini m) {
    return eft_asprintf(
        "{\"version\":\"1.0\",\"added_tokens\":%s,\"normalizer\":%s,\"pre_tokenizer\":%s,"
        "\"post_processor\":%s,\"decoder\":%s,\"model\":{\"type\":\"%s\",%s\"vocab\":%s,"
        "\"merges\":%s}}",
        m.added ? m.added : ADDED,
        m.normalizer
            ? m.normalizer
            : "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}",
        m.pre_tokenizer ? m.pre_tokenizer : "null", m.post_processor ? m.post_processor : POST,
        m.decoder ? m.decoder : DECODER, m.model_type ? m.model_type : "BPE",
        m.options ? m.options : "\"unk_token\":\"<unk>\",\"fuse_unk\":true,",
        m.vocab ? m.vocab : VOCAB, m.merges ? m.merges : "[[\"a\",\"b\"],[\"\\u2581\",\"ab\"]]");
}

static tok_tokenizer *load_mini(mini m) {
    char *json = mini_json(m);
    tok_tokenizer *t = tok_load_mem(json, strlen(json), NULL, 0, "mini.json");
    eft_free(json);
    return t;
}

/* Encodes without the post-processor and checks ids and offsets. */
static void check(const tok_tokenizer *t, const char *text, const int32_t *ids,
                  const uint32_t *start, const uint32_t *end, size_t n) {
    tok_ids out = {0};
    assert_int_equal(tok_encode_offsets(t, text, strlen(text), false, &out), 0);
    if (out.n != n) print_error("\"%s\": %zu tokens, expected %zu\n", text, out.n, n);
    assert_int_equal(out.n, n);
    for (size_t i = 0; i < n; i++) {
        if (out.ids[i] != ids[i] || out.start[i] != start[i] || out.end[i] != end[i])
            print_error("\"%s\" token %zu: %d [%u, %u), expected %d [%u, %u)\n", text, i,
                        out.ids[i], out.start[i], out.end[i], ids[i], start[i], end[i]);
        assert_int_equal(out.ids[i], ids[i]);
        assert_int_equal(out.start[i], start[i]);
        assert_int_equal(out.end[i], end[i]);
    }
    tok_ids_free(&out);
}

#define CHECK(t, text, IDS, STARTS, ENDS)                                                          \
    do {                                                                                           \
        const int32_t ids_[] = {IDS};                                                              \
        const uint32_t s_[] = {STARTS}, e_[] = {ENDS};                                             \
        check(t, text, ids_, s_, e_, EFT_ARRAY_LEN(ids_));                                         \
    } while (0)
#define L(...) __VA_ARGS__

static void test_bpe_rules(void **state) {
    tok_tokenizer *t = load_mini((mini){0});
    assert_non_null(t);
    CHECK(t, "ab ab", L(5, 6), L(0, 2), L(2, 5));
    CHECK(t, "xyab", L(0, 5), L(0, 2), L(2, 4)); /* fuse_unk: one <unk> for "xy" */
    CHECK(t, "abcx", L(5, 7, 0), L(0, 2, 3), L(2, 3, 4));
    tok_ids out = {0};
    assert_int_equal(tok_encode(t, "", 0, true, &out), 0); /* empty text: just the template */
    assert_int_equal(out.n, 1);
    assert_int_equal(out.ids[0], 1);
    assert_null(out.start); /* tok_encode does not ask for offsets */
    tok_ids_free(&out);
    tok_free(t);

    t = load_mini((mini){.options = "\"unk_token\":\"<unk>\",\"fuse_unk\":false,"});
    CHECK(t, "xyab", L(0, 0, 5), L(0, 1, 2), L(1, 2, 4));
    tok_free(t);

    /* No unk token and no byte fallback: HF drops the character, and later offsets shift. */
    t = load_mini((mini){.options = "\"unk_token\":null,"});
    CHECK(t, "axb", L(5), L(0), L(2));
    CHECK(t, "xab c", L(5, 4, 7), L(0, 2, 3), L(2, 4, 4));
    tok_free(t);

    /* Byte fallback: each byte of "é" (C3 A9) is a token covering the whole character. */
    t = load_mini((mini){.options = "\"unk_token\":\"<unk>\",\"byte_fallback\":true,"});
    CHECK(t, "xéab", L(8, 9, 10, 5), L(0, 1, 1, 3), L(1, 3, 3, 5));
    CHECK(t, "éz", L(9, 10, 0), L(0, 0, 2), L(2, 2, 3)); /* no <0x7A>: z is <unk> */
    tok_free(t);
    t = load_mini(
        (mini){.options = "\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,"});
    /* HF holds the first <unk> back to fuse it, so é's bytes come first */
    CHECK(t, "zéz", L(9, 10, 0), L(0, 1, 1), L(1, 3, 4));
    tok_free(t);

    t = load_mini((mini){.options = "\"unk_token\":\"<unk>\",\"ignore_merges\":true,"});
    CHECK(t, "ab", L(5), L(0), L(2));
    tok_free(t);
}

static void test_merges_spellings(void **state) {
    tok_tokenizer *pairs = load_mini((mini){0});
    tok_tokenizer *legacy =
        load_mini((mini){.merges = "[\"#version: 0.2\",\"a b\",\"\\u2581 ab\"]"});
    assert_non_null(pairs);
    assert_non_null(legacy);
    const char *text = "ab abab c ab";
    tok_ids a = {0}, b = {0};
    assert_int_equal(tok_encode(pairs, text, strlen(text), true, &a), 0);
    assert_int_equal(tok_encode(legacy, text, strlen(text), true, &b), 0);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.ids, b.ids, a.n * sizeof *a.ids);
    assert_int_equal(a.ids[1], 5); /* the merges applied: "ab" */
    tok_ids_free(&a);
    tok_ids_free(&b);
    tok_free(pairs);
    tok_free(legacy);
}

static void test_split_behaviors(void **state) {
    static const struct {
        const char *behavior;
        int32_t ids[5];
        size_t n;
    } cases[] = {
        {"Removed", {2, 2}, 2},
        {"Isolated", {2, 3, 3, 2, 3}, 5},
        {"MergedWithPrevious", {5, 3, 5}, 3},
        {"MergedWithNext", {2, 3, 3, 2, 3}, 5},
        {"Contiguous", {2, 3, 3, 2, 3}, 5},
    };
    for (size_t i = 0; i < EFT_ARRAY_LEN(cases); i++) {
        char *pre = eft_asprintf("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                                 "\"pattern\":{\"String\":\"b\"},\"behavior\":\"%s\","
                                 "\"invert\":false}]}",
                                 cases[i].behavior);
        tok_tokenizer *t = load_mini((mini){.pre_tokenizer = pre});
        assert_non_null(t);
        tok_ids out = {0};
        assert_int_equal(tok_encode(t, "abbab", 5, false, &out), 0);
        if (out.n != cases[i].n) print_error("%s\n", cases[i].behavior);
        assert_int_equal(out.n, cases[i].n);
        assert_memory_equal(out.ids, cases[i].ids, out.n * sizeof *out.ids);
        tok_ids_free(&out);
        tok_free(t);
        eft_free(pre);
    }
    /* MergedWithPrevious: a delimiter joins the piece before it; a second one stands alone */
    tok_tokenizer *t = load_mini((mini){.pre_tokenizer = "{\"type\":\"Split\",\"pattern\":{"
                                                         "\"String\":\"b\"},\"behavior\":"
                                                         "\"MergedWithPrevious\"}"});
    CHECK(t, "abba", L(5, 3, 2), L(0, 2, 3), L(2, 3, 4));
    tok_free(t);
}

static void test_decode(void **state) {
    tok_tokenizer *t = load_mini((mini){0});
    const int32_t ids[] = {1, 5, 4, 6, 99, 0, -7};
    char *s = tok_decode(t, ids, EFT_ARRAY_LEN(ids), false);
    assert_string_equal(s, "<s>ab  ab<unk>"); /* ids 99 and -7 name no token: dropped */
    eft_free(s);
    s = tok_decode(t, ids, EFT_ARRAY_LEN(ids), true);
    assert_string_equal(s, "ab  ab");
    eft_free(s);
    /* C3 A9 C3 is not UTF-8: each byte of the run becomes U+FFFD */
    const int32_t bad[] = {9, 10, 9, 5}, split[] = {9, 5, 10, 8}, good[] = {9, 10, 5};
    s = tok_decode(t, bad, 4, false);
    assert_string_equal(s, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                           "ab");
    eft_free(s);
    s = tok_decode(t, split, 4, false);
    assert_string_equal(s, "\xEF\xBF\xBD"
                           "ab\xEF\xBF\xBD\xEF\xBF\xBD");
    eft_free(s);
    s = tok_decode(t, good, 3, false);
    assert_string_equal(s, "éab");
    eft_free(s);
    s = tok_decode(t, NULL, 0, false);
    assert_string_equal(s, "");
    eft_free(s);
    tok_free(t);

    /* No decoder: pieces joined with spaces. Strip removes the leading metasymbol. */
    t = load_mini((mini){.decoder = "null"});
    s = tok_decode(t, (const int32_t[]){5, 6}, 2, false);
    assert_string_equal(s, "ab \xE2\x96\x81"
                           "ab");
    eft_free(s);
    tok_free(t);
    t = load_mini((mini){.decoder = "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Strip\","
                                    "\"content\":\"\\u2581\",\"start\":1,\"stop\":0},"
                                    "{\"type\":\"Fuse\"}]}"});
    assert_non_null(t);
    s = tok_decode(t, (const int32_t[]){6, 6}, 2, false);
    assert_string_equal(s, "abab");
    eft_free(s);
    tok_free(t);
}

static void test_accessors_and_config(void **state) {
    char *dir = test_tmpdir("tok_mini");
    char *json = mini_json((mini){0}), *file = eft_path_join(dir, "tokenizer.json");
    char *config = eft_path_join(dir, "tokenizer_config.json");
    test_write_file(file, json);
    tok_tokenizer *t = tok_load(dir); /* a folder: no tokenizer_config.json yet */
    assert_non_null(t);
    assert_int_equal(tok_vocab_size(t), 11);
    assert_int_equal(tok_id(t, "ab"), 5);
    assert_int_equal(tok_id(t, "zz"), -1);
    assert_string_equal(tok_piece(t, 6), "\xE2\x96\x81"
                                         "ab");
    assert_null(tok_piece(t, 11));
    assert_null(tok_piece(t, -1));
    assert_true(tok_is_special(t, 1));
    assert_false(tok_is_special(t, 2));
    assert_int_equal(tok_bos_id(t), 1);
    assert_int_equal(tok_unk_id(t), 0);
    assert_int_equal(tok_eos_id(t), -1); /* no <eos> piece and no config */
    assert_int_equal(tok_pad_id(t), -1);
    tok_free(t);

    test_write_file(config, "{\"eos_token\": {\"content\": \"<s>\"}, \"pad_token\": \"<unk>\"}");
    t = tok_load(file); /* the file itself: the config beside it is read */
    assert_non_null(t);
    assert_int_equal(tok_eos_id(t), 1);
    assert_int_equal(tok_pad_id(t), 0);
    tok_free(t);

    test_write_file(config, "{\"eos_token\": \"<end>\"}");
    assert_null(tok_load(dir));
    assert_contains(eft_err_msg(), "tokenizer_config.json");
    assert_contains(eft_err_msg(), "\"<end>\"");
    test_write_file(config, "{\"eos_token\": ");
    assert_null(tok_load(dir));
    assert_contains(eft_err_msg(), "tokenizer_config.json:1:");

    char *missing = eft_path_join(dir, "nope.json");
    assert_null(tok_load(missing));
    assert_contains(eft_err_msg(), "nope.json");
    eft_free(missing);
    eft_free(json);
    eft_free(file);
    eft_free(config);
    test_tmpdir_cleanup(dir);
}

static void test_invalid_utf8(void **state) {
    tok_tokenizer *t = load_mini((mini){0});
    tok_ids out = {0};
    assert_int_equal(tok_encode(t, "ab", 2, false, &out), 0);
    static const char *const bad[] = {"ab\xFF", "ab\xC0\x80", "ab\xED\xA0\x80", "ab\xE2\x96",
                                      "ab\xF4\x90\x80\x80"};
    for (size_t i = 0; i < EFT_ARRAY_LEN(bad); i++) {
        assert_int_equal(tok_encode(t, bad[i], strlen(bad[i]), true, &out), -1);
        assert_contains(eft_err_msg(), "not valid UTF-8 at byte 2");
        assert_int_equal(out.n, 1); /* nothing appended */
    }
    const char *texts[] = {"ab", "a\xFF", "b"};
    size_t lens[] = {2, 2, 1};
    tok_ids outs[3] = {{0}};
    assert_int_equal(tok_encode_batch(t, texts, lens, 3, false, outs), -1);
    assert_contains(eft_err_msg(), "text 1: text is not valid UTF-8 at byte 1");
    assert_int_equal(outs[2].n, 1);
    for (int i = 0; i < 3; i++) tok_ids_free(&outs[i]);
    tok_ids_free(&out);
    tok_free(t);
}

static void expect_refused(mini m, const char *phrase) {
    tok_tokenizer *t = load_mini(m);
    if (t) print_error("loaded a file that should fail with \"%s\"\n", phrase);
    assert_null(t);
    assert_contains(eft_err_msg(), "mini.json");
    assert_contains(eft_err_msg(), phrase);
}

static void test_malformed(void **state) {
    expect_refused((mini){.model_type = "WordPiece"}, "supports only BPE");
    expect_refused((mini){.vocab = "[]"}, "model.vocab is missing or not an object");
    expect_refused((mini){.merges = "{}"}, "model.merges is missing or not a list");
    expect_refused((mini){.merges = "[[\"a\",\"zz\"]]"}, "model.merges[0]: \"zz\" is not in");
    expect_refused((mini){.merges = "[[\"a\",\"b\"],[\"b\",\"a\"]]"},
                   "model.merges[1]: \"ba\" (the two pieces joined) is not in model.vocab");
    expect_refused((mini){.merges = "[\"a b c\"]"}, "with one space");
    expect_refused((mini){.merges = "[[\"a\"]]"}, "model.merges[0] must be a pair");
    expect_refused((mini){.vocab = "{\"<unk>\":0,\"<s>\":1,\"a\":7}"}, "\"a\" has id 7");
    expect_refused((mini){.vocab = "{\"<unk>\":0,\"<s>\":1,\"a\":1}"}, "another piece has too");
    expect_refused((mini){.vocab = "{\"<unk>\":0,\"<s>\":1,\"a\":\"2\"}"}, "not a number");
    expect_refused((mini){.vocab = "{\"<unk>\":0,\"<s>\":1,\"a\":1.5}"}, "whole numbers");
    expect_refused((mini){.options = "\"unk_token\":\"<oops>\","}, "\"<oops>\" is not in");
    expect_refused((mini){.options = "\"dropout\":0.1,"}, "dropout");
    expect_refused((mini){.options = "\"continuing_subword_prefix\":\"##\","},
                   "continuing_subword_prefix");
    expect_refused((mini){.normalizer = "{\"type\":\"NFKC\"}"},
                   "the NFKC normalizer is not supported");
    expect_refused((mini){.normalizer = "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},"
                                        "\"content\":\"_\"}"},
                   "a Regex pattern is not supported");
    /* cJSON passes raw bytes through: a Replace writing bad UTF-8 would corrupt every text */
    expect_refused((mini){.normalizer = "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},"
                                        "\"content\":\"\xFF\"}"},
                   "the Replace content is not valid UTF-8");
    expect_refused((mini){.vocab = "{\"<unk>\":0,\"<s>\":1,\"a\xC3\":2}"}, "is not valid UTF-8");
    expect_refused((mini){.pre_tokenizer = "{\"type\":\"Metaspace\"}"},
                   "the Metaspace pre-tokenizer is not supported");
    expect_refused((mini){.pre_tokenizer = "{\"type\":\"Split\",\"pattern\":{\"String\":\"b\"},"
                                           "\"behavior\":\"Removed\",\"invert\":true}"},
                   "invert");
    expect_refused((mini){.decoder = "{\"type\":\"Metaspace\"}"}, "the Metaspace decoder");
    expect_refused((mini){.post_processor = "{\"type\":\"BertProcessing\"}"},
                   "the BertProcessing post-processor");
    expect_refused((mini){.post_processor = "{\"type\":\"TemplateProcessing\",\"single\":[{"
                                            "\"SpecialToken\":{\"id\":\"<x>\"}}]}"},
                   "special token \"<x>\" has no \"ids\"");
    expect_refused((mini){.added = "[{\"id\":3,\"content\":\"<unk>\",\"special\":true}]"},
                   "has id 3, but Hugging Face tokenizers gives it id 0");
    expect_refused(
        (mini){.added = "[{\"id\":11,\"content\":\"<x>\"},{\"id\":12,\"content\":\"<x>\"}]"},
        "the same content is listed twice");
    expect_refused((mini){.added = "[{\"id\":11,\"content\":\"\"}]"}, "the content is empty");
    expect_refused((mini){.added = "{}"}, "\"added_tokens\" must be a list");

    tok_tokenizer *t = tok_load_mem("{\"model\": [1, 2", 15, NULL, 0, "broken.json");
    assert_null(t);
    assert_contains(eft_err_msg(), "broken.json:1:");
    assert_null(tok_load_mem("[]", 2, NULL, 0, "list.json"));
    assert_contains(eft_err_msg(), "list.json: expected a JSON object");
}

/* Added tokens beyond the model's ids, and their matching (longest first, adjacent). */
static void test_added_beyond_model(void **state) {
    tok_tokenizer *t = load_mini((mini){
        .added = "[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
                 "{\"id\":1,\"content\":\"<s>\",\"special\":true},"
                 "{\"id\":11,\"content\":\"<t>\",\"special\":false,\"normalized\":false},"
                 "{\"id\":12,\"content\":\"<t><t>x\",\"special\":true,\"normalized\":false}]"});
    assert_non_null(t);
    assert_int_equal(tok_vocab_size(t), 13);
    assert_string_equal(tok_piece(t, 12), "<t><t>x");
    /* the longest match wins where two start at the same place */
    CHECK(t, "<t><t>x<t><t>ab", L(12, 11, 11, 5), L(0, 7, 10, 13), L(7, 10, 13, 15));
    tok_free(t);

    /* no added_tokens at all (a crash the fuzzer found): nothing to match, lookups still work */
    t = load_mini((mini){.added = "null"});
    assert_non_null(t);
    assert_int_equal(tok_id(t, "<s>"), 1);
    assert_false(tok_is_special(t, 1));
    CHECK(t, "<s>ab", L(0, 5), L(0, 3), L(3, 5)); /* "<s>" is plain text: one fused <unk> */
    tok_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bpe_rules),
        cmocka_unit_test(test_merges_spellings),
        cmocka_unit_test(test_split_behaviors),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_accessors_and_config),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_added_beyond_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
