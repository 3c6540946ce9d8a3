/* ds_format.h: from one dataset row to token ids and labels, for each `type:` eft reads.
 *
 *   chat_template  messages rendered by the chat template engine (text/chat.h); this side maps
 *                  the row's turns (field_messages, message_property_mappings, roles, the
 *                  per-turn training flag, a "system" column) and resolves the template and
 *                  the eot_tokens;
 *   alpaca         Axolotl's fixed prompt ("Below is an instruction...") with or without input;
 *                  prompt and response are tokenized apart (each with <bos>, the response's
 *                  dropped), EOS appended to the response; with train_on_inputs false only the
 *                  response (and its EOS) is trained;
 *   user_defined   a `type:` mapping: the same with the user's formats and fields;
 *   completion     `field` (default "text"), tokenized with <bos> and EOS, everything trained,
 *                  cut into pieces of sequence_len tokens (each its own sample), the text first
 *                  truncated to 64 x sequence_len tokens as Axolotl does;
 *   input_output   `segments`: [{"label": bool, "text": str}]: each segment tokenized alone, no
 *                  <bos> or EOS added, label false (and train_on_inputs false) masked;
 *   pre-tokenized  no `type`: input_ids, labels (default: input_ids), attention_mask (tokens
 *                  with mask 0 are padding and are left out).
 *
 * A row that is wrong for its format (a missing or mistyped field, an unknown role, a token id
 * out of the vocabulary) is an error naming file:line and the field. Where Axolotl yields no
 * sample for a row on purpose (completion's empty or null text), the row is a counted skip.
 * Everything here is read-only once initialised, so rows are formatted on several threads.
 */
#ifndef EFT_DATA_DS_FORMAT_H
#define EFT_DATA_DS_FORMAT_H

#include "data/ds_samples.h"
#include "data/ds_source.h"
#include "io/config.h"
#include "text/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum ds_kind {
    DS_CHAT,
    DS_ALPACA,
    DS_USER_DEFINED,
    DS_COMPLETION,
    DS_INPUT_OUTPUT,
    DS_PRETOKENIZED
} ds_kind;

/* Why a row gave no sample on purpose. */
typedef enum ds_skip { DS_SKIP_NONE, DS_SKIP_EMPTY_TEXT, DS_N_SKIPS } ds_skip;
extern const char *const ds_skip_names[DS_N_SKIPS]; /* "empty text" ... */

typedef struct ds_chat ds_chat; /* ds_chat.c */

typedef struct ds_format {
    ds_kind kind;
    const cfg_dataset *d;
    const tok_tokenizer *tok;
    int64_t sequence_len; /* of the split (eval_sequence_len for test_datasets) */
    bool train_on_inputs;
    int32_t bos, eos; /* -1 when the tokenizer has none */
    int32_t vocab;
    /* alpaca and user_defined: the prompt's parts (owned copies) */
    char *system_prompt, *system_format, *turn_format, *no_input_format;
    char *field_instruction, *field_input, *field_output, *field_system;
    const char *field; /* completion */
    ds_chat *chat;     /* chat_template (owned) */
} ds_format;

/* Reads the entry's format and its options; errors name the key and its place in the config
 * (an unknown placeholder in a user-defined format, an eot token that is not one token). */
int ds_format_init(ds_format *f, const eft_config *c, const cfg_dataset *d, const char *what,
                   const tok_tokenizer *t, int64_t sequence_len);
void ds_format_free(ds_format *f);

/* Where a row came from, for messages. */
typedef struct ds_at {
    const ds_source *src;
    const ds_row *row;
} ds_at;

/* Appends the row's samples to out (none, one, or several for completion). Returns 0, with
 * *skip set when the row gives nothing on purpose, or -1 with an error naming the row. */
int ds_format_row(const ds_format *f, const cJSON *row, const ds_at *at, ds_samples *out,
                  ds_skip *skip);

/* ---- for the format files ---- */

/* Records "<file:line>: <field>: <message>" and returns -1. */
int ds_row_fail(const ds_at *at, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The string field `key`: *out is its text, or NULL when the value is null (or the key is
 * absent and !required). Missing (when required) and non-string values are errors. */
int ds_field_str(const ds_at *at, const cJSON *row, const char *key, bool required,
                 const char **out);
/* Axolotl's PromptTokenizingStrategy._tokenize: text with <bos>, cut to max_length tokens,
 * EOS appended when add_eos and it fits and the text does not already end with it, <bos>
 * dropped when strip_bos. An empty or NULL text gives no token. out is cleared first. */
int ds_tokenize_hf(const ds_format *f, const char *text, bool add_eos, bool strip_bos,
                   int64_t max_length, tok_ids *out, const ds_at *at);

int ds_instruct_row(const ds_format *f, const cJSON *row, const ds_at *at, ds_samples *out);
int ds_completion_row(const ds_format *f, const cJSON *row, const ds_at *at, ds_samples *out,
                      ds_skip *skip);
int ds_input_output_row(const ds_format *f, const cJSON *row, const ds_at *at, ds_samples *out);
int ds_pretokenized_row(const ds_format *f, const cJSON *row, const ds_at *at, ds_samples *out);
int ds_instruct_init(ds_format *f, const cfg_dataset *d, const char *what);

/* chat_template rows (ds_chat.c). */
int ds_chat_init(ds_format *f, const eft_config *c, const cfg_dataset *d, const char *what);
void ds_chat_free(ds_chat *ch);
int ds_chat_row(const ds_format *f, const cJSON *row, const ds_at *at, ds_samples *out);

#endif
