/* st_write.c: writing one safetensors file (see safetensors.h for the order and the format).
 *
 * The order is the Rust crate's prepare(): tensors sorted by dtype, descending in its Dtype enum
 * (which st_dtype mirrors), then by name in byte order; data laid out contiguously in that order.
 * The header is compact JSON as serde_json writes it: "__metadata__" first, then the tensors,
 * non-ASCII kept as UTF-8, control characters escaped. Not here: sharding, and reading back.
 */
#include "io/st_internal.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct wtensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data; /* [shape], borrowed */
    size_t nbytes;    /* set when writing */
} wtensor;

struct st_writer {
    wtensor *tensors; /* [n] in the order added */
    size_t n, cap;
    st_meta *meta; /* [n_meta], strings owned */
    size_t n_meta, cap_meta;
};

st_writer *st_writer_new(void) {
    return eft_calloc(1, sizeof(st_writer));
}

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) eft_free(w->tensors[i].name);
    for (size_t i = 0; i < w->n_meta; i++) {
        eft_free((char *)w->meta[i].key);
        eft_free((char *)w->meta[i].value);
    }
    eft_free(w->tensors);
    eft_free(w->meta);
    eft_free(w);
}

void st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
                   const void *data) {
    assert(dtype >= 0 && dtype < ST_DTYPE_COUNT);
    assert(ndim >= 0 && ndim <= ST_MAX_DIMS);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->tensors = eft_realloc(w->tensors, w->cap * sizeof *w->tensors);
    }
    wtensor *t = &w->tensors[w->n++];
    memset(t, 0, sizeof *t);
    t->name = eft_strdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        assert(shape[d] >= 0);
        t->shape[d] = shape[d];
    }
    t->data = data;
}

void st_writer_meta(st_writer *w, const char *key, const char *value) {
    for (size_t i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta[i].key, key) != 0) continue;
        eft_free((char *)w->meta[i].value);
        w->meta[i].value = eft_strdup(value);
        return;
    }
    if (w->n_meta == w->cap_meta) {
        w->cap_meta = w->cap_meta ? 2 * w->cap_meta : 4;
        w->meta = eft_realloc(w->meta, w->cap_meta * sizeof *w->meta);
    }
    w->meta[w->n_meta].key = eft_strdup(key);
    w->meta[w->n_meta].value = eft_strdup(value);
    w->n_meta++;
}

static int cmp_layout(const void *x, const void *y) {
    const wtensor *a = *(const wtensor *const *)x, *b = *(const wtensor *const *)y;
    if (a->dtype != b->dtype) return a->dtype > b->dtype ? -1 : 1;
    return strcmp(a->name, b->name);
}

static bool utf8(const char *s) {
    size_t n = strlen(s);
    return st_utf8_check((const unsigned char *)s, n) == n;
}

/* Byte sizes, and the checks a reader would make of the names. */
static int check_tensors(st_writer *w, const char *file) {
    const char **names = eft_malloc(w->n * sizeof *names);
    int r = 0;
    for (size_t i = 0; i < w->n && r == 0; i++) {
        wtensor *t = &w->tensors[i];
        int64_t numel = 1, nbytes;
        bool overflow = false;
        for (int d = 0; d < t->ndim; d++)
            overflow |= __builtin_mul_overflow(numel, t->shape[d], &numel);
        overflow |= __builtin_mul_overflow(numel, (int64_t)st_dtype_size(t->dtype), &nbytes);
        t->nbytes = (size_t)nbytes;
        names[i] = t->name;
        if (overflow)
            r = eft_fail_internal("%s: tensor \"%.200s\": the byte size overflows 64 bits", file,
                                  t->name);
        else if (!utf8(t->name) || !strcmp(t->name, "__metadata__"))
            r = eft_fail_internal("%s: tensor name \"%.200s\" is not valid UTF-8 or is reserved",
                                  file, t->name);
        else
            assert(t->data || t->nbytes == 0);
    }
    long dup = r == 0 ? st_find_duplicate(names, w->n) : -1;
    if (dup >= 0) r = eft_fail_internal("%s: tensor \"%.200s\" was added twice", file, names[dup]);
    for (size_t i = 0; i < w->n_meta && r == 0; i++)
        if (!utf8(w->meta[i].key) || !utf8(w->meta[i].value))
            r = eft_fail_internal("%s: metadata \"%.200s\" is not valid UTF-8", file,
                                  w->meta[i].key);
    eft_free(names);
    return r;
}

/* The padded header for tensors in `order`. */
static void build_header(const st_writer *w, wtensor *const *order, eft_buf *h) {
    eft_buf_putc(h, '{');
    if (w->n_meta) {
        eft_buf_puts(h, "\"__metadata__\":{");
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i) eft_buf_putc(h, ',');
            eft_buf_json_str(h, w->meta[i].key);
            eft_buf_putc(h, ':');
            eft_buf_json_str(h, w->meta[i].value);
        }
        eft_buf_putc(h, '}');
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n; i++) {
        const wtensor *t = order[i];
        if (i || w->n_meta) eft_buf_putc(h, ',');
        eft_buf_json_str(h, t->name);
        eft_buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            eft_buf_printf(h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        eft_buf_printf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                       (unsigned long long)(offset + t->nbytes));
        offset += t->nbytes;
    }
    eft_buf_putc(h, '}');
    while (h->len % 8) eft_buf_putc(h, ' '); /* so that the data starts 8-byte aligned */
}

int st_writer_write_to(st_writer *w, FILE *f, const char *name) {
    if (check_tensors(w, name) != 0) return -1;
    wtensor **order = eft_malloc(w->n * sizeof *order);
    for (size_t i = 0; i < w->n; i++) order[i] = &w->tensors[i];
    qsort(order, w->n, sizeof *order, cmp_layout);
    eft_buf h = {0};
    build_header(w, order, &h);
    if (h.len > 100000000) { /* readers refuse it (the crate's MAX_HEADER_SIZE) */
        size_t n = h.len;
        eft_buf_free(&h);
        eft_free(order);
        return eft_fail_internal("%s: the header would be %zu bytes, over the 100,000,000 that "
                                 "safetensors readers accept",
                                 name, n);
    }
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    bool ok = fwrite(len, 1, 8, f) == 8 && fwrite(h.data, 1, h.len, f) == h.len;
    for (size_t i = 0; i < w->n && ok; i++)
        ok = order[i]->nbytes == 0 ||
             fwrite(order[i]->data, 1, order[i]->nbytes, f) == order[i]->nbytes;
    eft_buf_free(&h);
    eft_free(order);
    if (!ok) return eft_fail_errno(name, "Writing failed (is the disk full?).");
    return 0;
}

int st_writer_write(st_writer *w, const char *path) {
    eft_atomic a;
    if (eft_atomic_open(&a, path) != 0) return -1;
    if (st_writer_write_to(w, a.f, path) != 0) {
        eft_atomic_abort(&a);
        return -1;
    }
    return eft_atomic_commit(&a);
}
