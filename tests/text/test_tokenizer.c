/* test_tokenizer.c: Gemma 3's real tokenizer against Hugging Face tokenizers.
 *
 *  - the 600 strings of ../shared/data/gemma3-tokenizer/reference.jsonl: ids with and without
 *    <bos>, one by one and in a batch, and decoding back to `decoded`;
 *  - HF's byte offsets and added-token flags (lstrip, rstrip, single_word, normalized) for the
 *    cases in tests/data_files/tokenizer_hf_cases.jsonl (tools/tokenizer_hf_cases.py);
 *  - offsets of every reference token cover exactly the bytes they came from;
 *  - hand-checked cases (empty text, spaces only, added tokens alone and adjacent, byte
 *    fallback, the accessors, decoding with and without special tokens);
 *  - chunked BPE (tok_bpe.c's shortcut) equals whole-word BPE on random text.
 * Skipped where ../shared is absent.
 */
#include "support/test.h"

#include "base/err.h"
#include "base/buf.h"
#include "base/fs.h"
#include "base/rng.h"
#include "io/json.h"
#include "text/tok_internal.h"
#include "text/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static tok_tokenizer *gemma3_tok;

static tok_tokenizer *gemma3(void) {
    char *path = test_shared_or_skip("data/gemma3-tokenizer");
    if (!gemma3_tok) gemma3_tok = tok_load(path);
    if (!gemma3_tok) print_error("%s\n", eft_err_msg());
    assert_non_null(gemma3_tok);
    eft_free(path);
    return gemma3_tok;
}

static int free_all(void **state) {
    tok_free(gemma3_tok);
    return 0;
}

/* The lines of a JSONL file, parsed (a NULL-terminated array; free with free_lines). */
static cJSON **read_lines(const char *path) {
    size_t n = 0;
    char *text = eft_read_file(path, &n);
    assert_non_null(text);
    size_t cap = 1024, count = 0;
    cJSON **lines = eft_malloc(cap * sizeof *lines);
    for (char *p = text, *nl; p < text + n; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + n - p));
        if (!nl) nl = text + n;
        if (nl == p) continue;
        if (count + 1 >= cap) lines = eft_realloc(lines, (cap *= 2) * sizeof *lines);
        assert_non_null(lines[count++] = eft_json_parse(p, (size_t)(nl - p), path));
    }
    lines[count] = NULL;
    eft_free(text);
    return lines;
}

static void free_lines(cJSON **lines) {
    for (cJSON **l = lines; *l; l++) cJSON_Delete(*l);
    eft_free(lines);
}

static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

/* Compares a list of ids (or offsets, with offsets=1/2) with a JSON list. */
static void expect_list(const tok_ids *got, int which, const cJSON *want, const char *text,
                        size_t line) {
    size_t n = (size_t)cJSON_GetArraySize(want), i = 0;
    bool same = got->n == n;
    for (const cJSON *w = want->child; same && w; w = w->next, i++) {
        int64_t v = which == 0   ? (int64_t)got->ids[i]
                    : which == 1 ? (int64_t)got->start[i]
                                 : (int64_t)got->end[i];
        same = v == (int64_t)w->valuedouble;
    }
    if (!same) {
        char *json = cJSON_PrintUnformatted(want);
        print_error("line %zu %s of \"%.80s\": got %zu values, expected %s\n", line,
                    which == 0   ? "ids"
                    : which == 1 ? "starts"
                                 : "ends",
                    text, got->n, json);
        free(json);
    }
    assert_true(same);
}

/* Gemma's normalizer by hand: spaces become "▁". */
static char *normalized(const char *s, size_t n) {
    char *out = eft_malloc(3 * n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ')
            memcpy(o, "\xE2\x96\x81", 3), o += 3;
        else
            *o++ = s[i];
    }
    *o = 0;
    return out;
}

static int byte_piece(const char *piece) {
    unsigned v;
    return strlen(piece) == 6 && sscanf(piece, "<0x%2X>", &v) == 1 ? (int)v : -1;
}

/* Every token's offsets cover exactly its bytes, in order, with no gaps: an added token its
 * content, a piece the text that normalizes to it, a run of byte-fallback tokens one character
 * (each token the whole character, as Hugging Face gives it). */
static void check_offsets(const tok_tokenizer *t, const char *text, size_t n, const tok_ids *ids) {
    size_t pos = 0;
    for (size_t k = 0; k < ids->n;) {
        uint32_t s = ids->start[k], e = ids->end[k];
        const char *piece = tok_piece(t, ids->ids[k]);
        assert_int_equal(s, pos);
        assert_true(e > s && e <= n);
        if (byte_piece(piece) >= 0) {
            size_t j = 0;
            for (; k + j < ids->n && ids->start[k + j] == s && ids->end[k + j] == e; j++)
                assert_int_equal(byte_piece(tok_piece(t, ids->ids[k + j])),
                                 (unsigned char)text[s + j]);
            assert_int_equal(j, e - s); /* one token per byte of the character */
            k += j;
        } else {
            char *norm = normalized(text + s, e - s);
            bool raw = strlen(piece) == e - s && !memcmp(piece, text + s, e - s);
            if (!raw && strcmp(norm, piece) != 0)
                print_error("token %zu \"%s\" covers \"%.*s\"\n", k, piece, (int)(e - s), text + s);
            assert_true(raw || !strcmp(norm, piece));
            eft_free(norm);
            k++;
        }
        pos = e;
    }
    assert_int_equal(pos, n);
}

static void test_reference(void **state) {
    tok_tokenizer *t = gemma3();
    char *path = test_shared_or_skip("data/gemma3-tokenizer/reference.jsonl");
    cJSON **lines = read_lines(path);
    size_t count = 0;
    for (cJSON **l = lines; *l; l++) count++;
    assert_int_equal(count, 600);
    const char **texts = eft_malloc(count * sizeof *texts);
    size_t *lens = eft_malloc(count * sizeof *lens);
    tok_ids *batch = eft_calloc(count, sizeof *batch);
    for (size_t i = 0; i < count; i++) {
        const char *text = str(lines[i], "text");
        size_t n = strlen(text);
        texts[i] = text, lens[i] = n;
        tok_ids with = {0}, without = {0};
        assert_int_equal(tok_encode(t, text, n, true, &with), 0);
        assert_int_equal(tok_encode_offsets(t, text, n, false, &without), 0);
        expect_list(&with, 0, cJSON_GetObjectItemCaseSensitive(lines[i], "ids"), text, i + 1);
        expect_list(&without, 0, cJSON_GetObjectItemCaseSensitive(lines[i], "ids_nospecial"), text,
                    i + 1);
        check_offsets(t, text, n, &without);
        char *dec = tok_decode(t, without.ids, without.n, false);
        assert_string_equal(dec, str(lines[i], "decoded"));
        eft_free(dec);
        dec = tok_decode(t, with.ids, with.n, false); /* <bos> is special, and kept */
        assert_memory_equal(dec, "<bos>", 5);
        assert_string_equal(dec + 5, str(lines[i], "decoded"));
        eft_free(dec);
        tok_ids_free(&with);
        tok_ids_free(&without);
    }
    assert_int_equal(tok_encode_batch(t, texts, lens, count, true, batch), 0);
    for (size_t i = 0; i < count; i++) {
        expect_list(&batch[i], 0, cJSON_GetObjectItemCaseSensitive(lines[i], "ids"), texts[i],
                    i + 1);
        tok_ids_free(&batch[i]);
    }
    eft_free(batch);
    eft_free(texts);
    eft_free(lens);
    free_lines(lines);
    eft_free(path);
}

/* Gemma 3's tokenizer.json with the extra added tokens of the cases file appended. */
static tok_tokenizer *with_flags(const cJSON *extra) {
    char *path = test_shared_or_skip("data/gemma3-tokenizer/tokenizer.json");
    cJSON *root = eft_json_parse_file(path);
    assert_non_null(root);
    cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    for (const cJSON *a = extra->child; a; a = a->next)
        cJSON_AddItemToArray(added, cJSON_Duplicate(a, true));
    char *json = cJSON_PrintUnformatted(root);
    tok_tokenizer *t = tok_load_mem(json, strlen(json), NULL, 0, "gemma3+flags");
    if (!t) print_error("%s\n", eft_err_msg());
    assert_non_null(t);
    free(json);
    cJSON_Delete(root);
    eft_free(path);
    return t;
}

static void test_hf_cases(void **state) {
    tok_tokenizer *t = gemma3(), *flags = NULL;
    cJSON **lines = read_lines(EFT_SOURCE_DIR "/tests/data_files/tokenizer_hf_cases.jsonl");
    size_t checked = 0;
    for (size_t i = 1; lines[i]; i++) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(lines[i], "flags")) && !flags)
            flags = with_flags(cJSON_GetObjectItemCaseSensitive(lines[0], "added"));
        tok_tokenizer *use =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(lines[i], "flags")) ? flags : t;
        const char *text = str(lines[i], "text");
        tok_ids out = {0};
        assert_int_equal(tok_encode_offsets(use, text, strlen(text), false, &out), 0);
        expect_list(&out, 0, cJSON_GetObjectItemCaseSensitive(lines[i], "ids"), text, i + 1);
        expect_list(&out, 1, cJSON_GetObjectItemCaseSensitive(lines[i], "start"), text, i + 1);
        expect_list(&out, 2, cJSON_GetObjectItemCaseSensitive(lines[i], "end"), text, i + 1);
        tok_ids_free(&out);
        checked++;
    }
    assert_true(checked > 60);
    assert_non_null(flags);
    tok_free(flags);
    free_lines(lines);
}

static void expect_ids(const tok_tokenizer *t, const char *text, bool special, const int32_t *ids,
                       size_t n) {
    tok_ids out = {0};
    assert_int_equal(tok_encode(t, text, strlen(text), special, &out), 0);
    assert_int_equal(out.n, n);
    assert_memory_equal(out.ids, ids, n * sizeof *ids);
    tok_ids_free(&out);
}
#define EXPECT(t, text, special, ...)                                                              \
    expect_ids(t, text, special, (const int32_t[]){__VA_ARGS__},                                   \
               sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t))

static void test_handmade(void **state) {
    tok_tokenizer *t = gemma3();
    assert_int_equal(tok_vocab_size(t), 262145); /* 262144 pieces + <image_soft_token> */
    assert_int_equal(tok_bos_id(t), 2);
    assert_int_equal(tok_eos_id(t), 106); /* tokenizer_config.json: <end_of_turn> */
    assert_int_equal(tok_pad_id(t), 0);
    assert_int_equal(tok_unk_id(t), 3);
    assert_string_equal(tok_piece(t, 105), "<start_of_turn>");
    assert_int_equal(tok_id(t, "<start_of_turn>"), 105);
    assert_int_equal(tok_id(t, "<image_soft_token>"), 262144);
    assert_true(tok_is_special(t, 105));
    assert_false(tok_is_special(t, 107)); /* "\n" is an added token, not special */

    tok_ids out = {0};
    assert_int_equal(tok_encode_offsets(t, "", 0, true, &out), 0);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.ids[0], 2);
    assert_int_equal(out.start[0], 0);
    assert_int_equal(out.end[0], 0);
    tok_ids_clear(&out);
    assert_int_equal(tok_encode(t, "", 0, false, &out), 0);
    assert_int_equal(out.n, 0);
    tok_ids_free(&out);

    const int32_t spaces = tok_id(t, "\xE2\x96\x81\xE2\x96\x81\xE2\x96\x81"); /* "▁▁▁" */
    assert_true(spaces > 0);
    EXPECT(t, "   ", false, spaces);
    EXPECT(t, "<start_of_turn>", false, 105);
    EXPECT(t, "<start_of_turn>", true, 2, 105);
    EXPECT(t, "<start_of_turn><end_of_turn>", false, 105, 106);
    EXPECT(t, "\n\n", false, 108);  /* runs of newlines are added tokens */
    EXPECT(t, "<bos>", true, 2, 2); /* written in the text, <bos> is matched too */
    /* U+15E8B is not in the vocabulary: its four UTF-8 bytes as <0xHH> pieces */
    const int32_t a = tok_id(t, "a"), b = tok_id(t, "b");
    EXPECT(t,
           "a\xF0\x95\xBA\x8B"
           "b",
           false, a, tok_id(t, "<0xF0>"), tok_id(t, "<0x95>"), tok_id(t, "<0xBA>"),
           tok_id(t, "<0x8B>"), b);

    /* decoding: skip_special drops <bos> and <start_of_turn>, keeps non-special "\n" */
    const int32_t ids[] = {2, 105, tok_id(t, "user"), 107, tok_id(t, "Hi"), 106, 107};
    char *s = tok_decode(t, ids, EFT_ARRAY_LEN(ids), true);
    assert_string_equal(s, "user\nHi\n");
    eft_free(s);
    s = tok_decode(t, ids, EFT_ARRAY_LEN(ids), false);
    assert_string_equal(s, "<bos><start_of_turn>user\nHi<end_of_turn>\n");
    eft_free(s);
}

/* Random text from pieces that stress chunk boundaries: words, runs of spaces, punctuation,
 * digits, other scripts, characters outside the vocabulary, combining marks, the metasymbol. */
static char *random_text(eft_rng *rng, size_t *n) {
    static const char *const parts[] = {
        "the",
        "The",
        " ",
        "  ",
        "    ",
        "\t",
        "\n",
        ".",
        ",",
        "!?",
        "'s",
        "-",
        "_",
        "(",
        ")",
        "{",
        "}",
        "0",
        "12",
        "345",
        "e",
        "é",
        "a\xCC\x81",
        "\xE2\x96\x81",
        "日本",
        "語",
        "の",
        "Привет",
        "мир",
        "مرحبا",
        "👍",
        "🏽",
        "\xF0\x95\xBA\x8B",
        "\xE2\x80\x8B",
        "http://",
        "ing",
        "tion",
        "un",
        "re",
        "www",
        ">",
        "</",
        "<",
        "br",
        "def",
        "self",
        "=",
        "==",
        "##",
        "*",
        "<start_of_turn>",
        "<unused7>",
        "\r\n",
        "\xC2\xA0",
        "ﬁ",
        "Ⅻ",
    };
    eft_buf b = {0};
    size_t parts_n = eft_rng_below(rng, 300);
    for (size_t i = 0; i < parts_n; i++)
        eft_buf_puts(&b, parts[eft_rng_below(rng, EFT_ARRAY_LEN(parts))]);
    *n = b.len;
    return b.data ? eft_buf_take(&b) : eft_strdup("");
}

static void test_chunking_is_exact(void **state) {
    tok_tokenizer *t = gemma3();
    assert_true(t->chunking); /* Gemma's merges allow it: the shortcut is what is tested */
    eft_rng rng;
    eft_rng_seed(&rng, 7, 0);
    for (int round = 0; round < 300; round++) {
        size_t n;
        char *text = random_text(&rng, &n);
        tok_ids chunked = {0}, whole = {0};
        assert_int_equal(tok_encode_offsets(t, text, n, true, &chunked), 0);
        t->chunking = false; /* every word is one BPE run (and one cache key) */
        assert_int_equal(tok_encode_offsets(t, text, n, true, &whole), 0);
        t->chunking = true;
        if (chunked.n != whole.n || memcmp(chunked.ids, whole.ids, whole.n * sizeof *whole.ids))
            print_error("round %d: chunked and whole-word BPE differ on \"%s\"\n", round, text);
        assert_int_equal(chunked.n, whole.n);
        assert_memory_equal(chunked.ids, whole.ids, whole.n * sizeof *whole.ids);
        assert_memory_equal(chunked.start, whole.start, whole.n * sizeof *whole.start);
        assert_memory_equal(chunked.end, whole.end, whole.n * sizeof *whole.end);
        tok_ids_free(&chunked);
        tok_ids_free(&whole);
        eft_free(text);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_hf_cases),
        cmocka_unit_test(test_handmade),
        cmocka_unit_test(test_chunking_is_exact),
    };
    return cmocka_run_group_tests(tests, NULL, free_all);
}
