/* ds_completion.c: `type: completion` rows: raw text, everything trained.
 *
 * As Axolotl's completion strategy: the text is tokenized with <bos>, cut to 64 x sequence_len
 * tokens, EOS appended when it fits, and the ids are then cut into pieces of sequence_len
 * tokens, each piece its own sample (the last one may be short; the length filter drops it
 * when it is shorter than min_sample_len). Labels are the ids, <bos> included. An empty or null
 * text gives no sample (a counted skip), as it gives none in Axolotl.
 */
#include "data/ds_format.h"

#include "base/err.h"

int ds_completion_row(const ds_format *f, const cJSON *row, const ds_at *at, ds_samples *out,
                      ds_skip *skip) {
    const char *text;
    if (ds_field_str(at, row, f->field, true, &text)) return -1;
    tok_ids ids = {0};
    if (ds_tokenize_hf(f, text, true, false, 64 * f->sequence_len, &ids, at)) {
        tok_ids_free(&ids);
        return -1;
    }
    if (ids.n == 0) *skip = DS_SKIP_EMPTY_TEXT;
    for (int64_t a = 0; a < (int64_t)ids.n; a += f->sequence_len) {
        int64_t n = EFT_MIN(f->sequence_len, (int64_t)ids.n - a);
        ds_samples_add(out, ids.ids + a, NULL, n);
    }
    tok_ids_free(&ids);
    return 0;
}
