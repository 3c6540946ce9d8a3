/* json.c: cJSON with located errors and typed getters (see json.h). */
#include "io/json.h"

#include "base/err.h"
#include "base/fs.h"

#include <math.h>
#include <string.h>

cJSON *eft_json_parse(const char *text, size_t n, const char *name) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, false);
    if (root) {
        /* Only white space may follow the value. */
        const char *p = end, *stop = text + n;
        while (p < stop && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == 0)) p++;
        if (p == stop) return root;
        cJSON_Delete(root);
        end = p;
    }
    if (!end || end < text || end > text + n) end = text;
    int line = 1, col = 1;
    for (const char *p = text; p < end; p++) {
        if (*p == '\n') line++, col = 1;
        else col++;
    }
    eft_fail("%s:%d:%d: invalid JSON here. Check the file is complete and valid JSON "
             "(python3 -m json.tool %s shows the problem).", name, line, col, name);
    return NULL;
}

cJSON *eft_json_parse_file(const char *path) {
    size_t n;
    char *text = eft_read_file(path, &n);
    if (!text) return NULL;
    cJSON *root = eft_json_parse(text, n, path);
    eft_free(text);
    return root;
}

bool eft_json_is_integer(const cJSON *n) {
    if (!cJSON_IsNumber(n)) return false;
    double v = n->valuedouble;
    return isfinite(v) && v == floor(v) && fabs(v) <= 9007199254740992.0;
}

const char *eft_json_kind(const cJSON *v) {
    if (!v) return "nothing";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "a list";
    if (cJSON_IsObject(v)) return "an object";
    return "something else";
}

static const cJSON *get(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(v) ? NULL : v;
}

int eft_json_int_opt(const cJSON *obj, const char *key, int64_t *out, const char *where) {
    const cJSON *v = get(obj, key);
    if (!v) return 0;
    if (!eft_json_is_integer(v))
        return eft_fail("%s: \"%s\" must be an integer, found %s", where, key, eft_json_kind(v));
    *out = (int64_t)v->valuedouble;
    return 0;
}

int eft_json_int(const cJSON *obj, const char *key, int64_t *out, const char *where) {
    if (!get(obj, key)) return eft_fail("%s: \"%s\" is missing", where, key);
    return eft_json_int_opt(obj, key, out, where);
}

int eft_json_num_opt(const cJSON *obj, const char *key, double *out, const char *where) {
    const cJSON *v = get(obj, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v))
        return eft_fail("%s: \"%s\" must be a number, found %s", where, key, eft_json_kind(v));
    *out = v->valuedouble;
    return 0;
}

int eft_json_num(const cJSON *obj, const char *key, double *out, const char *where) {
    if (!get(obj, key)) return eft_fail("%s: \"%s\" is missing", where, key);
    return eft_json_num_opt(obj, key, out, where);
}

int eft_json_bool_opt(const cJSON *obj, const char *key, bool *out, const char *where) {
    const cJSON *v = get(obj, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v))
        return eft_fail("%s: \"%s\" must be true or false, found %s", where, key, eft_json_kind(v));
    *out = cJSON_IsTrue(v);
    return 0;
}

int eft_json_str_opt(const cJSON *obj, const char *key, const char **out, const char *where) {
    const cJSON *v = get(obj, key);
    if (!v) return 0;
    if (!cJSON_IsString(v))
        return eft_fail("%s: \"%s\" must be a string, found %s", where, key, eft_json_kind(v));
    *out = v->valuestring;
    return 0;
}

int eft_json_str(const cJSON *obj, const char *key, const char **out, const char *where) {
    if (!get(obj, key)) return eft_fail("%s: \"%s\" is missing", where, key);
    return eft_json_str_opt(obj, key, out, where);
}
