/* json.h: reading JSON files through cJSON, with errors that say where.
 *
 * cJSON does the parsing; this adds what eft's users need: a syntax error names file:line:column,
 * and the typed getters name the file, the key and what was expected. Objects returned belong to
 * the caller (cJSON_Delete).
 */
#ifndef EFT_IO_JSON_H
#define EFT_IO_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses text[0..n) (need not be NUL-terminated); `name` is used in errors. */
cJSON *eft_json_parse(const char *text, size_t n, const char *name);
cJSON *eft_json_parse_file(const char *path);

/* Typed getters. `where` names the object in errors ("model/config.json", "text_config").
 * The _opt forms leave *out unchanged and return 0 when the key is absent or null. */
int eft_json_int(const cJSON *obj, const char *key, int64_t *out, const char *where);
int eft_json_int_opt(const cJSON *obj, const char *key, int64_t *out, const char *where);
int eft_json_num(const cJSON *obj, const char *key, double *out, const char *where);
int eft_json_num_opt(const cJSON *obj, const char *key, double *out, const char *where);
int eft_json_bool_opt(const cJSON *obj, const char *key, bool *out, const char *where);
/* The string stays owned by obj. */
int eft_json_str(const cJSON *obj, const char *key, const char **out, const char *where);
int eft_json_str_opt(const cJSON *obj, const char *key, const char **out, const char *where);

/* What a value is, for messages: "null", "a boolean", "a number", "a string", "a list",
 * "an object", or "nothing" for NULL (an absent key). */
const char *eft_json_kind(const cJSON *v);

/* True when n is a number holding an integer that a double represents exactly (|v| <= 2^53). */
bool eft_json_is_integer(const cJSON *n);

#endif
