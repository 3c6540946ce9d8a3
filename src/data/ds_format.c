/* ds_format.c: choosing a dataset entry's format, the shared row helpers, and Axolotl's way of
 * tokenizing one prompt part (see ds_format.h). */
#include "io/json.h"
#include "data/ds_format.h"

#include "base/err.h"

#include <stdarg.h>
#include <string.h>

const char *const ds_skip_names[DS_N_SKIPS] = {"", "empty text"};

int ds_format_init(ds_format *f, const eft_config *c, const cfg_dataset *d, const char *what,
                   const tok_tokenizer *t, int64_t sequence_len) {
    memset(f, 0, sizeof *f);
    f->d = d;
    f->tok = t;
    f->sequence_len = sequence_len;
    f->train_on_inputs = c->train_on_inputs.v;
    f->bos = tok_bos_id(t);
    f->eos = tok_eos_id(t);
    f->vocab = tok_vocab_size(t);
    const char *type = d->type.v;
    if (!d->type.set || !type)
        f->kind = DS_PRETOKENIZED;
    else if (!strcmp(type, "chat_template"))
        f->kind = DS_CHAT;
    else if (!strcmp(type, "alpaca"))
        f->kind = DS_ALPACA;
    else if (!strcmp(type, "user_defined"))
        f->kind = DS_USER_DEFINED;
    else if (!strcmp(type, "completion"))
        f->kind = DS_COMPLETION;
    else if (!strcmp(type, "input_output"))
        f->kind = DS_INPUT_OUTPUT;
    else { /* the config refuses other types; this keeps a new one from slipping through */
        char *at = cfg_pos_str(d->type.at);
        eft_fail("%s: %s: type: %s is not read by eft's data pipeline.", at, what, type);
        eft_free(at);
        return -1;
    }
    f->field = d->field.v ? d->field.v : "text";
    if ((f->kind == DS_ALPACA || f->kind == DS_USER_DEFINED) && ds_instruct_init(f, d, what))
        return -1;
    if (f->kind == DS_CHAT && ds_chat_init(f, c, d, what)) return -1;
    return 0;
}

void ds_format_free(ds_format *f) {
    eft_free(f->system_prompt), eft_free(f->system_format);
    eft_free(f->turn_format), eft_free(f->no_input_format);
    eft_free(f->field_instruction), eft_free(f->field_input);
    eft_free(f->field_output), eft_free(f->field_system);
    if (f->chat) ds_chat_free(f->chat);
    memset(f, 0, sizeof *f);
}

int ds_format_row(const ds_format *f, const cJSON *row, const ds_at *at, ds_samples *out,
                  ds_skip *skip) {
    *skip = DS_SKIP_NONE;
    switch (f->kind) {
    case DS_CHAT:
        return ds_chat_row(f, row, at, out);
    case DS_ALPACA:
    case DS_USER_DEFINED:
        return ds_instruct_row(f, row, at, out);
    case DS_COMPLETION:
        return ds_completion_row(f, row, at, out, skip);
    case DS_INPUT_OUTPUT:
        return ds_input_output_row(f, row, at, out);
    case DS_PRETOKENIZED:
        return ds_pretokenized_row(f, row, at, out);
    }
    return eft_fail_internal("ds_format_row: unknown format %d", (int)f->kind);
}

/* ---- helpers ---- */

int ds_row_fail(const ds_at *at, const char *field, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *where = ds_row_where(at->src, at->row);
    eft_fail("%s: %s: %s", where, field, msg);
    eft_free(where);
    return -1;
}

int ds_field_str(const ds_at *at, const cJSON *row, const char *key, bool required,
                 const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    *out = NULL;
    if (!v) {
        if (!required) return 0;
        return ds_row_fail(at, key,
                           "missing in this row. Add the field, or name the field the "
                           "data uses in the dataset's config.");
    }
    if (cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v))
        return ds_row_fail(at, key, "expected a string, found %s.", eft_json_kind(v));
    *out = v->valuestring;
    return 0;
}

int ds_tokenize_hf(const ds_format *f, const char *text, bool add_eos, bool strip_bos,
                   int64_t max_length, tok_ids *out, const ds_at *at) {
    tok_ids_clear(out);
    if (!text || !*text) return 0;
    if (tok_encode(f->tok, text, strlen(text), true, out)) {
        char *where = ds_row_where(at->src, at->row);
        eft_err_context("%s", where);
        eft_free(where);
        return -1;
    }
    /* truncation keeps the added <bos> at the front, so the first max_length ids stay */
    if ((int64_t)out->n > max_length) out->n = (size_t)max_length;
    if (out->n == 0) return 0;
    if (add_eos && f->eos >= 0 && out->ids[out->n - 1] != f->eos && (int64_t)out->n < max_length) {
        if (out->n == out->cap) { /* no offsets are kept here, so ids alone grow */
            out->cap = out->cap ? out->cap * 2 : 16;
            out->ids = eft_realloc(out->ids, out->cap * sizeof *out->ids);
        }
        out->ids[out->n++] = f->eos;
    }
    if (strip_bos && f->bos >= 0 && out->ids[0] == f->bos) {
        memmove(out->ids, out->ids + 1, (out->n - 1) * sizeof *out->ids);
        out->n--;
    }
    return 0;
}
