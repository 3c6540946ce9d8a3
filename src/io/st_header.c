/* st_header.c: parsing and validating one safetensors header (the rules are in safetensors.h).
 *
 * Everything about a file that can be wrong is found here, before any tensor view exists; the
 * archive code only assembles shards that passed. The first broken rule is reported and the file
 * refused: there is no recovery and no guessing. Deliberately no data is read, only the header.
 */
#include "io/st_internal.h"

#include "base/err.h"
#include "io/json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_MAX 100000000ull       /* the Rust crate's MAX_HEADER_SIZE */
#define WHOLE_MAX  9007199254740992.0 /* 2^53: whole numbers below it are exact in a double */

typedef struct span {
    uint64_t begin, end; /* data_offsets */
    size_t tensor;       /* index into a->tensors */
} span;

/* Records "<file>: tensor "<name>": <what>". Returns -1. */
static int tensor_fail(const char *file, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int tensor_fail(const char *file, const char *name, const char *fmt, ...) {
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    /* Most rules say only what is wrong: what to do is the same for all of them. */
    size_t n = strlen(what);
    const char *hint = n && what[n - 1] == '.' ? "" : ". The header is corrupt.";
    return eft_fail("%s: tensor \"%.200s\": %s%s", file, name, what, hint);
}


/* True when v is a whole number in [0, 2^53). */
static bool whole(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d < WHOLE_MAX) || d != floor(d)) return false;
    *out = (uint64_t)d;
    return true;
}

/* The one member `key` of an entry; -1 when it is missing or appears twice. */
static int member(const char *file, const cJSON *entry, const char *key, const cJSON **out) {
    *out = NULL;
    for (const cJSON *m = entry->child; m; m = m->next) {
        if (strcmp(m->string, key) != 0) continue;
        if (*out) return tensor_fail(file, entry->string, "\"%s\" appears twice", key);
        *out = m;
    }
    if (!*out)
        return tensor_fail(file, entry->string,
                           "\"%s\" is missing; every tensor needs dtype, "
                           "shape and data_offsets",
                           key);
    return 0;
}

static void format_shape(char *s, size_t cap, const int64_t *shape, int ndim) {
    size_t len = (size_t)snprintf(s, cap, "[");
    for (int d = 0; d < ndim && len < cap; d++)
        len += (size_t)snprintf(s + len, cap - len, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (len < cap) snprintf(s + len, cap - len, "]");
}

static int parse_dtype(const char *file, const cJSON *entry, st_tensor *t) {
    const cJSON *v;
    if (member(file, entry, "dtype", &v) != 0) return -1;
    if (!cJSON_IsString(v))
        return tensor_fail(file, entry->string, "\"dtype\" must be a string, found %s", eft_json_kind(v));
    int d = st_dtype_from_name(v->valuestring);
    if (d < 0)
        return tensor_fail(file, entry->string,
                           "dtype \"%.40s\" is not one eft reads (BF16, F16, "
                           "F32, U8, I8, I32, I64, BOOL). Convert the checkpoint to one of those.",
                           v->valuestring);
    t->dtype = (st_dtype)d;
    return 0;
}

/* The shape, its element count and its byte size, all checked for overflow. */
static int parse_shape(const char *file, const cJSON *entry, st_tensor *t) {
    const cJSON *v;
    if (member(file, entry, "shape", &v) != 0) return -1;
    if (!cJSON_IsArray(v))
        return tensor_fail(file, entry->string, "\"shape\" must be a list, found %s", eft_json_kind(v));
    int ndim = cJSON_GetArraySize(v);
    if (ndim > ST_MAX_DIMS)
        return tensor_fail(file, entry->string, "shape has %d dimensions; eft reads at most %d",
                           ndim, ST_MAX_DIMS);
    int64_t numel = 1;
    int d = 0;
    for (const cJSON *x = v->child; x; x = x->next, d++) {
        uint64_t dim;
        if (!whole(x, &dim)) {
            if (cJSON_IsNumber(x))
                return tensor_fail(file, entry->string,
                                   "shape[%d] is %g; dimensions are whole "
                                   "numbers from 0 to 2^53-1",
                                   d, x->valuedouble);
            return tensor_fail(file, entry->string, "shape[%d] must be a number, found %s", d,
                               eft_json_kind(x));
        }
        t->shape[d] = (int64_t)dim;
        if (__builtin_mul_overflow(numel, (int64_t)dim, &numel))
            return tensor_fail(file, entry->string,
                               "the element count of the shape overflows "
                               "64 bits. The header is corrupt.");
    }
    t->ndim = ndim;
    t->numel = numel;
    int64_t nbytes;
    if (__builtin_mul_overflow(numel, (int64_t)st_dtype_size(t->dtype), &nbytes))
        return tensor_fail(file, entry->string,
                           "the byte size of the shape overflows 64 bits. "
                           "The header is corrupt.");
    t->nbytes = (size_t)nbytes;
    return 0;
}

static int parse_offsets(const char *file, const cJSON *entry, span *sp) {
    const cJSON *v;
    if (member(file, entry, "data_offsets", &v) != 0) return -1;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !whole(v->child, &sp->begin) ||
        !whole(v->child->next, &sp->end))
        return tensor_fail(file, entry->string,
                           "\"data_offsets\" must be [begin, end], two whole "
                           "numbers from 0 to 2^53-1");
    if (sp->begin > sp->end)
        return tensor_fail(file, entry->string, "data_offsets [%llu, %llu] end before they begin",
                           (unsigned long long)sp->begin, (unsigned long long)sp->end);
    return 0;
}

static int parse_tensor(const char *file, const cJSON *entry, st_tensor *t, span *sp,
                        uint64_t data_size) {
    if (!cJSON_IsObject(entry))
        return tensor_fail(file, entry->string,
                           "expected an object {\"dtype\", \"shape\", "
                           "\"data_offsets\"}, found %s",
                           eft_json_kind(entry));
    if (parse_dtype(file, entry, t) || parse_shape(file, entry, t) ||
        parse_offsets(file, entry, sp))
        return -1;
    if (sp->end - sp->begin != t->nbytes) {
        char shape[256];
        format_shape(shape, sizeof shape, t->shape, t->ndim);
        return tensor_fail(file, entry->string,
                           "data_offsets [%llu, %llu] hold %llu bytes, but "
                           "shape %s of %s needs %zu. The header is corrupt.",
                           (unsigned long long)sp->begin, (unsigned long long)sp->end,
                           (unsigned long long)(sp->end - sp->begin), shape,
                           st_dtype_name(t->dtype), t->nbytes);
    }
    if (sp->end > data_size)
        return tensor_fail(file, entry->string,
                           "data_offsets [%llu, %llu] run past the end of the "
                           "data, which has %llu bytes. The file is truncated.",
                           (unsigned long long)sp->begin, (unsigned long long)sp->end,
                           (unsigned long long)data_size);
    return 0;
}

static int parse_metadata(const char *file, const cJSON *v, st_shard *sh) {
    if (cJSON_IsNull(v)) return 0;
    if (!cJSON_IsObject(v))
        return eft_fail("%s: \"__metadata__\" must be an object of strings, found %s. The header "
                        "is corrupt.",
                        file, eft_json_kind(v));
    size_t n = 0;
    for (const cJSON *m = v->child; m; m = m->next) {
        if (!cJSON_IsString(m))
            return eft_fail("%s: \"__metadata__\": \"%.200s\" must be a string, found %s. The "
                            "header is corrupt.",
                            file, m->string, eft_json_kind(m));
        n++;
    }
    sh->meta = eft_calloc(n, sizeof *sh->meta);
    for (const cJSON *m = v->child; m; m = m->next, sh->n_meta++) {
        sh->meta[sh->n_meta].key = eft_strdup(m->string);
        sh->meta[sh->n_meta].value = eft_strdup(m->valuestring);
    }
    const char **keys = eft_malloc(n * sizeof *keys);
    for (size_t i = 0; i < n; i++) keys[i] = sh->meta[i].key;
    long dup = st_find_duplicate(keys, n);
    eft_free(keys);
    if (dup >= 0)
        return eft_fail("%s: \"__metadata__\": key \"%.200s\" appears twice. The header is "
                        "corrupt.",
                        file, sh->meta[dup].key);
    return 0;
}

static int cmp_span(const void *x, const void *y) {
    const span *a = x, *b = y;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return a->tensor < b->tensor ? -1 : a->tensor > b->tensor;
}

/* Sorted by offsets, the ranges must tile [0, data_size) exactly (the crate's validate()). */
static int check_layout(const char *file, const st_tensor *tensors, span *sp, size_t n,
                        uint64_t data_size) {
    qsort(sp, n, sizeof *sp, cmp_span);
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = tensors[sp[i].tensor].name;
        if (sp[i].begin > pos && i == 0)
            return tensor_fail(file, name,
                               "data starts at byte %llu, but the first tensor must "
                               "start at 0: data_offsets cover the data with no gap",
                               (unsigned long long)sp[i].begin);
        if (sp[i].begin > pos)
            return tensor_fail(file, name,
                               "data starts at byte %llu, but the tensor before it "
                               "(\"%.200s\") ends at %llu: data_offsets must leave no gap",
                               (unsigned long long)sp[i].begin, tensors[sp[i - 1].tensor].name,
                               (unsigned long long)pos);
        if (sp[i].begin < pos)
            return tensor_fail(file, name,
                               "data_offsets [%llu, %llu] overlap those of \"%.200s\" "
                               "[%llu, %llu]. The header is corrupt.",
                               (unsigned long long)sp[i].begin, (unsigned long long)sp[i].end,
                               tensors[sp[i - 1].tensor].name, (unsigned long long)sp[i - 1].begin,
                               (unsigned long long)pos);
        pos = sp[i].end;
    }
    if (pos != data_size)
        return eft_fail("%s: the tensors cover %llu bytes of data but the file holds %llu after "
                        "the header: %llu trailing bytes. The file is corrupt.",
                        file, (unsigned long long)pos, (unsigned long long)data_size,
                        (unsigned long long)(data_size - pos));
    return 0;
}

/* Reads the tensor entries of root (an object) into a, then checks names and layout. */
static int parse_entries(st_archive *a, int shard, const cJSON *root, const unsigned char *data,
                         uint64_t data_size) {
    st_shard *sh = &a->shards[shard];
    const char *file = sh->path;
    size_t first = a->n_tensors, n = 0;
    bool seen_metadata = false;
    for (const cJSON *e = root->child; e; e = e->next) n += strcmp(e->string, "__metadata__") != 0;
    if (a->cap_tensors < first + n) {
        a->cap_tensors = first + n;
        a->tensors = eft_realloc(a->tensors, a->cap_tensors * sizeof *a->tensors);
    }
    span *spans = eft_malloc(n * sizeof *spans);
    const char **names = eft_malloc(n * sizeof *names);
    int r = 0;
    for (const cJSON *e = root->child; e && r == 0; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (seen_metadata)
                r = eft_fail("%s: \"__metadata__\" appears twice. The header is corrupt.", file);
            else
                r = parse_metadata(file, e, sh);
            seen_metadata = true;
            continue;
        }
        size_t k = a->n_tensors - first;
        st_tensor *t = &a->tensors[a->n_tensors++];
        memset(t, 0, sizeof *t);
        t->name = names[k] = eft_strdup(e->string);
        t->shard = shard;
        t->file = file;
        spans[k].tensor = first + k;
        r = parse_tensor(file, e, t, &spans[k], data_size);
        if (r == 0) t->data = data + spans[k].begin;
    }
    long dup = r == 0 ? st_find_duplicate(names, n) : -1;
    if (dup >= 0)
        r = tensor_fail(file, names[dup],
                        "the name appears twice in the header. The file is corrupt.");
    if (r == 0) r = check_layout(file, a->tensors, spans, n, data_size);
    eft_free(spans);
    eft_free(names);
    return r;
}

int st_parse_header(st_archive *a, int shard, const unsigned char *bytes, size_t n) {
    const char *file = a->shards[shard].path;
    if (n < 8)
        return eft_fail("%s: the file has %zu bytes, too few for a safetensors file (it starts "
                        "with an 8-byte header length). The file is truncated.",
                        file, n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | bytes[i];
    if (hlen > HEADER_MAX)
        return eft_fail("%s: the header length is %llu bytes, over the 100,000,000 that "
                        "safetensors allows. The file is corrupt or not a safetensors file.",
                        file, (unsigned long long)hlen);
    if (hlen > n - 8)
        return eft_fail("%s: the header length is %llu bytes but only %zu follow it. The file is "
                        "truncated or not a safetensors file.",
                        file, (unsigned long long)hlen, n - 8);
    if (st_check_text(file, bytes + 8, hlen) != 0) return -1;

    /* cJSON gets a NUL-terminated copy, so that it can never read past the header. */
    char *text = eft_strndup((const char *)bytes + 8, hlen);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, hlen, &end, false);
    size_t at = end && end >= text && end <= text + hlen ? (size_t)(end - text) : 0;
    int r = 0;
    if (!root) {
        r = eft_fail("%s: byte %zu: the header is not valid JSON. The file is "
                     "corrupt or not a safetensors file.",
                     file, at + 8);
    } else {
        while (at < hlen &&
               (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r'))
            at++;
        if (at < hlen)
            r = eft_fail("%s: byte %zu: trailing bytes after the JSON object; only "
                         "white space may follow it. The file is corrupt.",
                         file, at + 8);
        else if (!cJSON_IsObject(root))
            r = eft_fail("%s: the header is %s, expected a JSON object of tensors. The file is "
                         "corrupt or not a safetensors file.",
                         file, eft_json_kind(root));
        else
            r = parse_entries(a, shard, root, bytes + 8 + hlen, n - 8 - hlen);
    }
    cJSON_Delete(root);
    eft_free(text);
    return r;
}
