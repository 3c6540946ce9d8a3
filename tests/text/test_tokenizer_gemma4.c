/* test_tokenizer_gemma4.c: the Gemma-4-style tokenizer (tests/support/gemma4_tokenizer.h):
 * renamed special tokens are found by name, matched in text as single tokens, and kept or
 * dropped by decoding; a chat turn encodes as spec section 9 says. Skipped without ../shared.
 */
#include "support/test.h"

#include "support/gemma4_tokenizer.h"

#include "base/err.h"
#include "text/tokenizer.h"

#include <string.h>

static tok_tokenizer *load(void) {
    char *dir = test_gemma4_tokenizer_path();
    tok_tokenizer *t = tok_load(dir);
    if (!t) print_error("%s\n", eft_err_msg());
    assert_non_null(t);
    eft_free(dir);
    return t;
}

static void test_special_tokens(void **state) {
    tok_tokenizer *t = load();
    assert_int_equal(tok_vocab_size(t), 262144);
    static const struct {
        const char *name;
        int32_t id;
    } specials[] = {
        {"<pad>", 0},          {"<eos>", 1},         {"<bos>", 2},          {"<unk>", 3},
        {"<|tool>", 46},       {"<tool|>", 47},      {"<|\"|>", 52},        {"<|think|>", 98},
        {"<|channel>", 100},   {"<channel|>", 101},  {"<|turn>", 105},      {"<turn|>", 106},
        {"<|image>", 255999},  {"<|audio>", 256000}, {"<|image|>", 258880}, {"<image|>", 258882},
        {"<|video|>", 258884},
    };
    for (size_t i = 0; i < EFT_ARRAY_LEN(specials); i++) {
        assert_int_equal(tok_id(t, specials[i].name), specials[i].id);
        assert_string_equal(tok_piece(t, specials[i].id), specials[i].name);
        assert_true(tok_is_special(t, specials[i].id));
    }
    assert_int_equal(tok_id(t, "<start_of_turn>"), -1); /* Gemma 3's names are gone */
    assert_int_equal(tok_id(t, "<image_soft_token>"), -1);
    assert_int_equal(tok_bos_id(t), 2);
    assert_int_equal(tok_eos_id(t), 106); /* tokenizer_config.json: <turn|> */
    assert_int_equal(tok_pad_id(t), 0);
    tok_free(t);
}

static void test_chat_turn(void **state) {
    tok_tokenizer *t = load();
    const char *text = "<|turn>user\nHi<turn|>\n";
    /* "user" and "Hi" are Hugging Face's ids for these Gemma 3 pieces, which the derived file
     * keeps; "\n" is the added token 107. */
    const int32_t want[] = {2, 105, 2364, 107, 10979, 106, 107};
    const uint32_t start[] = {0, 0, 7, 11, 12, 14, 21}, end[] = {0, 7, 11, 12, 14, 21, 22};
    tok_ids out = {0};
    assert_int_equal(tok_encode_offsets(t, text, strlen(text), true, &out), 0);
    assert_int_equal(out.n, EFT_ARRAY_LEN(want));
    assert_memory_equal(out.ids, want, sizeof want);
    assert_memory_equal(out.start, start, sizeof start);
    assert_memory_equal(out.end, end, sizeof end);
    char *s = tok_decode(t, out.ids, out.n, true);
    assert_string_equal(s, "user\nHi\n");
    eft_free(s);
    s = tok_decode(t, out.ids, out.n, false);
    assert_string_equal(s, "<bos><|turn>user\nHi<turn|>\n");
    eft_free(s);
    tok_ids_free(&out);

    /* the spec's example conversation, <bos> written in the text */
    text = "<bos><|turn>system\nYou are helpful.<turn|>\n<|turn>user\nHi!<turn|>\n<|turn>model\n"
           "Hello!<turn|>\n";
    assert_int_equal(tok_encode(t, text, strlen(text), false, &out), 0);
    int turns = 0, ends = 0;
    for (size_t i = 0; i < out.n; i++) turns += out.ids[i] == 105, ends += out.ids[i] == 106;
    assert_int_equal(out.ids[0], 2);
    assert_int_equal(turns, 3);
    assert_int_equal(ends, 3);
    s = tok_decode(t, out.ids, out.n, false);
    assert_string_equal(s, text);
    eft_free(s);
    tok_ids_free(&out);

    /* an image: <|image> n x <|image|> <image|> */
    text = "<|image><|image|><|image|><|image|><image|>";
    const int32_t image[] = {255999, 258880, 258880, 258880, 258882};
    assert_int_equal(tok_encode(t, text, strlen(text), false, &out), 0);
    assert_int_equal(out.n, EFT_ARRAY_LEN(image));
    assert_memory_equal(out.ids, image, sizeof image);
    tok_ids_free(&out);
    tok_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_chat_turn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
