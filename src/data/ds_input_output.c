/* ds_input_output.c: `type: input_output` rows (Axolotl's template-free format).
 *
 * {"segments": [{"label": true|false, "text": "..."}, ...]}: each segment is tokenized on its
 * own with no special tokens (the data carries its own <bos> and EOS as text) and the pieces
 * are concatenated; a segment's tokens are trained when its label is true or train_on_inputs
 * is set.
 */
#include "io/json.h"
#include "data/ds_format.h"

#include "base/err.h"

#include <string.h>

int ds_input_output_row(const ds_format *f, const cJSON *row, const ds_at *at, ds_samples *out) {
    const cJSON *segs = cJSON_GetObjectItemCaseSensitive(row, "segments");
    if (!segs)
        return ds_row_fail(at, "segments",
                           "missing in this row. input_output rows are "
                           "{\"segments\": [{\"label\": true, \"text\": \"...\"}]}.");
    if (!cJSON_IsArray(segs))
        return ds_row_fail(at, "segments",
                           "expected a list of {\"label\", \"text\"} objects, "
                           "found %s.",
                           eft_json_kind(segs));
    tok_ids ids = {0};
    int32_t *labels = NULL;
    size_t cap = 0;
    int rc = 0, k = 0;
    for (const cJSON *s = segs->child; s && !rc; s = s->next, k++) {
        char field[48];
        snprintf(field, sizeof field, "segments[%d]", k);
        const cJSON *label = cJSON_GetObjectItemCaseSensitive(s, "label");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(s, "text");
        if (!cJSON_IsObject(s))
            rc = ds_row_fail(at, field, "expected an object {\"label\", \"text\"}, found %s.",
                             eft_json_kind(s));
        else if (!cJSON_IsBool(label))
            rc = ds_row_fail(at, field, "label: expected true or false, found %s.",
                             eft_json_kind(label));
        else if (!cJSON_IsString(text))
            rc = ds_row_fail(at, field, "text: expected a string, found %s.", eft_json_kind(text));
        if (rc) break;
        size_t n0 = ids.n;
        const char *t = text->valuestring;
        if (tok_encode(f->tok, t, strlen(t), false, &ids)) {
            char *where = ds_row_where(at->src, at->row);
            eft_err_context("%s: %s", where, field);
            eft_free(where);
            rc = -1;
            break;
        }
        if (ids.n > cap) {
            cap = ids.cap;
            labels = eft_realloc(labels, cap * sizeof *labels);
        }
        bool train = cJSON_IsTrue(label) || f->train_on_inputs;
        for (size_t i = n0; i < ids.n; i++) labels[i] = train ? ids.ids[i] : DS_IGNORE;
    }
    if (!rc) ds_samples_add(out, ids.ids, labels, (int64_t)ids.n);
    tok_ids_free(&ids);
    eft_free(labels);
    return rc;
}
