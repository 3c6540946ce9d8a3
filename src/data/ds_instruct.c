/* ds_instruct.c: instruction rows, `type: alpaca` and a user-defined `type:` mapping.
 *
 * Both follow Axolotl's instruction strategies: the prompt is
 *     system_format(system) + (input ? turn_format(instruction, input)
 *                                    : no_input_format(instruction))
 * tokenized with <bos> and no EOS; the response is tokenized apart, with EOS appended and its
 * <bos> dropped, and is always trained; the prompt is trained only with train_on_inputs. Each
 * part is cut to sequence_len tokens on its own (the length filter then sees the sum).
 *
 * alpaca's system text differs with and without input; a user-defined mapping takes its system
 * text from the row's field_system when present, else from system_prompt. Formats use Python's
 * str.format placeholders ({instruction}, {input}, {system}; {{ and }} for braces).
 */
#include "data/ds_format.h"

#include "base/buf.h"
#include "base/err.h"

#include <string.h>

static const char alpaca_system[] =
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.";
static const char alpaca_system_no_input[] =
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.";

/* Checks that fmt uses only the placeholders in names (NULL-terminated). */
static int check_format(const char *fmt, const char *const *names, const cfg_str *key,
                        const char *keyname, const char *what) {
    for (const char *p = fmt; *p; p++) {
        if (*p == '}') {
            if (p[1] == '}') {
                p++;
                continue;
            }
            goto bad;
        }
        if (*p != '{') continue;
        if (p[1] == '{') {
            p++;
            continue;
        }
        const char *close = strchr(p, '}');
        if (!close) goto bad;
        size_t n = (size_t)(close - p - 1);
        bool known = false;
        for (int i = 0; names[i]; i++)
            known |= strlen(names[i]) == n && !strncmp(p + 1, names[i], n);
        if (!known) {
            char *at = cfg_pos_str(key->at);
            eft_fail("%s: %s: type.%s: unknown placeholder {%.*s}; this format may use %s%s%s. "
                     "Write {{ and }} for literal braces.",
                     at, what, keyname, (int)n, p + 1, names[0], names[1] ? " and " : "",
                     names[1] ? names[1] : "");
            eft_free(at);
            return -1;
        }
        p = close;
    }
    return 0;
bad:;
    char *at = cfg_pos_str(key->at);
    eft_fail("%s: %s: type.%s: unbalanced brace in \"%s\". Write {{ and }} for literal braces.", at,
             what, keyname, fmt);
    eft_free(at);
    return -1;
}

static void render(eft_buf *b, const char *fmt, const char *instruction, const char *input,
                   const char *system) {
    for (const char *p = fmt; *p; p++) {
        if ((*p == '{' && p[1] == '{') || (*p == '}' && p[1] == '}')) {
            eft_buf_putc(b, *p++);
            continue;
        }
        if (*p != '{') {
            eft_buf_putc(b, *p);
            continue;
        }
        const char *close = strchr(p, '}');
        size_t n = (size_t)(close - p - 1);
        const char *v = n == 11 && !strncmp(p + 1, "instruction", 11) ? instruction
                        : n == 5 && !strncmp(p + 1, "input", 5)       ? input
                                                                      : system;
        eft_buf_puts(b, v ? v : "");
        p = close;
    }
}

static char *dup_or(const cfg_str *s, const char *def) {
    return eft_strdup(s->set && s->v ? s->v : def);
}

int ds_instruct_init(ds_format *f, const cfg_dataset *d, const char *what) {
    if (f->kind == DS_ALPACA) {
        f->system_format = eft_strdup("{system}\n\n");
        f->turn_format = eft_strdup("### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
                                    "### Response:\n");
        f->no_input_format = eft_strdup("### Instruction:\n{instruction}\n\n### Response:\n");
        f->field_instruction = eft_strdup("instruction");
        f->field_input = eft_strdup("input");
        f->field_output = eft_strdup("output");
        return 0;
    }
    /* Axolotl's UserDefinedDatasetConfig defaults */
    const cfg_dataset_type *t = &d->custom;
    f->system_prompt = dup_or(&t->system_prompt, "");
    f->system_format = dup_or(&t->system_format, "{system}");
    f->turn_format = dup_or(&t->format, "{instruction} {input} ");
    f->no_input_format = dup_or(&t->no_input_format, "{instruction} ");
    f->field_instruction = dup_or(&t->field_instruction, "instruction");
    f->field_input = dup_or(&t->field_input, "input");
    f->field_output = dup_or(&t->field_output, "output");
    f->field_system = dup_or(&t->field_system, "system");
    static const char *const sys[] = {"system", NULL};
    static const char *const turn[] = {"instruction", "input", NULL};
    static const char *const no_input[] = {"instruction", NULL};
    if (check_format(f->system_format, sys, &t->system_format, "system_format", what) ||
        check_format(f->turn_format, turn, &t->format, "format", what) ||
        check_format(f->no_input_format, no_input, &t->no_input_format, "no_input_format", what))
        return -1;
    return 0;
}

int ds_instruct_row(const ds_format *f, const cJSON *row, const ds_at *at, ds_samples *out) {
    bool alpaca = f->kind == DS_ALPACA;
    const char *instruction, *input, *output, *system = NULL;
    if (ds_field_str(at, row, f->field_instruction, true, &instruction) ||
        ds_field_str(at, row, f->field_input, false, &input) ||
        ds_field_str(at, row, f->field_output, alpaca, &output) ||
        (!alpaca && ds_field_str(at, row, f->field_system, false, &system)))
        return -1;
    if (!instruction)
        return ds_row_fail(at, f->field_instruction, "is null; every row needs an instruction.");
    bool has_input = input && *input;
    if (alpaca)
        system = has_input ? alpaca_system : alpaca_system_no_input;
    else if (!cJSON_GetObjectItemCaseSensitive(row, f->field_system))
        system = f->system_prompt;
    eft_buf prompt = {0};
    if (system && *system && *f->system_format)
        render(&prompt, f->system_format, NULL, NULL, system);
    render(&prompt, has_input ? f->turn_format : f->no_input_format, instruction, input, NULL);

    tok_ids p = {0}, r = {0};
    int rc = ds_tokenize_hf(f, prompt.data, false, false, f->sequence_len, &p, at);
    if (!rc) rc = ds_tokenize_hf(f, output, true, true, f->sequence_len, &r, at);
    if (!rc) {
        size_t n = p.n + r.n;
        int32_t *ids = eft_malloc((n ? n : 1) * sizeof *ids);
        int32_t *labels = eft_malloc((n ? n : 1) * sizeof *labels);
        for (size_t k = 0; k < p.n; k++) {
            ids[k] = p.ids[k];
            labels[k] = f->train_on_inputs ? p.ids[k] : DS_IGNORE;
        }
        for (size_t k = 0; k < r.n; k++) ids[p.n + k] = labels[p.n + k] = r.ids[k];
        ds_samples_add(out, ids, labels, (int64_t)n);
        eft_free(ids);
        eft_free(labels);
    }
    tok_ids_free(&p);
    tok_ids_free(&r);
    eft_buf_free(&prompt);
    return rc;
}
