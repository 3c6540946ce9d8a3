/* fuzz_tokenizer_json.c: libFuzzer target for the tokenizer.json loader (tok_load_mem).
 *
 * Any input must either load or fail with a message, never crash, leak or read out of bounds;
 * whatever loads must encode (with offsets), batch-encode and decode a few short texts, and an
 * encoding's offsets must stay inside its text. Seeds: small tokenizer.json files such as
 * tests/text/test_tokenizer_mini.c builds (the fuzzer finds the structure faster from them).
 */
#include "base/err.h"
#include "text/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const texts[] = {
        "Hello world", "a b  c\n\t<s>ab", "\xE2\x96\x81x \xE2\x96\x81", "\xE6\x97\xA5 \xF0\x9F\x91\x8D", "",
    };
    tok_tokenizer *t = tok_load_mem((const char *)data, size, NULL, 0, "fuzz.json");
    if (!t) {
        if (!*eft_err_msg()) abort(); /* a failure must say why */
        eft_err_clear();
        return 0;
    }
    size_t lens[5];
    tok_ids outs[5];
    memset(outs, 0, sizeof outs);
    for (int i = 0; i < 5; i++) {
        lens[i] = strlen(texts[i]);
        tok_ids ids = {0};
        if (tok_encode_offsets(t, texts[i], lens[i], i % 2 == 0, &ids)) abort();
        for (size_t k = 0; k < ids.n; k++)
            if (ids.start[k] > ids.end[k] || ids.end[k] > lens[i] || ids.ids[k] < 0 ||
                ids.ids[k] >= tok_vocab_size(t))
                abort();
        eft_free(tok_decode(t, ids.ids, ids.n, i % 2 == 1));
        tok_ids_free(&ids);
    }
    if (tok_encode_batch(t, texts, lens, 5, true, outs)) abort();
    for (int i = 0; i < 5; i++) tok_ids_free(&outs[i]);
    tok_free(t);
    return 0;
}
