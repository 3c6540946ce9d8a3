/* ds_pretokenized.c: rows that are already tokens (a dataset entry with no `type`).
 *
 * {"input_ids": [...], "labels": [...], "attention_mask": [...]}: labels default to the ids
 * (everything trained) and must have the same length; -100 marks a token that is not trained.
 * eft lays samples end to end without padding, so tokens whose attention_mask is 0 (padding)
 * are left out. Ids and labels outside the vocabulary are errors: the embedding would read
 * past its table.
 */
#include "data/ds_format.h"

#include "base/err.h"
#include "io/json.h"

/* The integer list `key` into v[*n] (owned), or an error. Absent: *v NULL. */
static int int_list(const ds_at *at, const cJSON *row, const char *key, int32_t **v, int *n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(row, key);
    *v = NULL, *n = 0;
    if (!a || cJSON_IsNull(a)) return 0;
    if (!cJSON_IsArray(a))
        return ds_row_fail(at, key, "expected a list of integers, found %s.", eft_json_kind(a));
    *n = cJSON_GetArraySize(a);
    *v = eft_malloc((size_t)(*n ? *n : 1) * sizeof **v);
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next, i++) {
        if (!eft_json_is_integer(x) || x->valuedouble < INT32_MIN || x->valuedouble > INT32_MAX) {
            eft_free(*v);
            *v = NULL;
            return ds_row_fail(at, key, "item %d: expected an integer, found %s.", i,
                               eft_json_kind(x));
        }
        (*v)[i] = (int32_t)x->valuedouble;
    }
    return 0;
}

int ds_pretokenized_row(const ds_format *f, const cJSON *row, const ds_at *at, ds_samples *out) {
    int32_t *ids, *labels, *mask;
    int n, nl, nm;
    if (!cJSON_GetObjectItemCaseSensitive(row, "input_ids"))
        return ds_row_fail(at, "input_ids",
                           "missing in this row. A dataset with no type: must "
                           "hold token ids (input_ids, labels); otherwise set "
                           "type: chat_template, alpaca, completion or "
                           "input_output.");
    if (int_list(at, row, "input_ids", &ids, &n)) return -1;
    int rc = int_list(at, row, "labels", &labels, &nl);
    if (!rc)
        rc = int_list(at, row, "attention_mask", &mask, &nm);
    else
        mask = NULL;
    if (!rc && !ids) rc = ds_row_fail(at, "input_ids", "is null; expected a list of integers.");
    if (!rc && labels && nl != n)
        rc = ds_row_fail(at, "labels",
                         "has %d items but input_ids has %d; give one label per "
                         "token.",
                         nl, n);
    if (!rc && mask && nm != n)
        rc = ds_row_fail(at, "attention_mask", "has %d items but input_ids has %d.", nm, n);
    int k = 0;
    for (int i = 0; !rc && i < n; i++) {
        if (ids[i] < 0 || ids[i] >= f->vocab)
            rc = ds_row_fail(at, "input_ids", "item %d: %d is outside the vocabulary [0, %d).", i,
                             ids[i], f->vocab);
        else if (labels && labels[i] != DS_IGNORE && (labels[i] < 0 || labels[i] >= f->vocab))
            rc = ds_row_fail(at, "labels",
                             "item %d: %d is neither -100 nor in the vocabulary "
                             "[0, %d).",
                             i, labels[i], f->vocab);
        else if (mask && mask[i] != 0 && mask[i] != 1)
            rc = ds_row_fail(at, "attention_mask", "item %d: expected 0 or 1, found %d.", i,
                             mask[i]);
        else if (!mask || mask[i]) { /* keep the token */
            ids[k] = ids[i];
            if (labels) labels[k] = labels[i];
            k++;
        }
    }
    if (!rc) ds_samples_add(out, ids, labels, k);
    eft_free(ids);
    eft_free(labels);
    eft_free(mask);
    return rc;
}
