/* safetensors.c: the archive: opening files and folders, lookup by name, metadata, and widening
 * to fp32 (see safetensors.h). Parsing a header is st_header.c's job, reading a sharded index
 * st_index.c's, and writing st_write.c's.
 */
#include "io/st_internal.h"

#include "base/err.h"
#include "base/half.h"
#include "base/hash.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; eft reads it in place and needs a little-endian host"
#endif

/* One row per st_dtype, in enum order. */
static const struct {
    const char *name;
    size_t size;
} dtypes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},   [ST_I8] = {"I8", 1},   [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I32] = {"I32", 4}, [ST_F32] = {"F32", 4}, [ST_I64] = {"I64", 8},
};

const char *st_dtype_name(st_dtype d) {
    assert(d >= 0 && d < ST_DTYPE_COUNT);
    return dtypes[d].name;
}

size_t st_dtype_size(st_dtype d) {
    assert(d >= 0 && d < ST_DTYPE_COUNT);
    return dtypes[d].size;
}

int st_dtype_from_name(const char *name) {
    for (int d = 0; d < ST_DTYPE_COUNT; d++)
        if (!strcmp(dtypes[d].name, name)) return d;
    return -1;
}

st_archive *st_archive_new(const char *path) {
    st_archive *a = eft_calloc(1, sizeof *a);
    a->path = eft_strdup(path);
    return a;
}

int st_archive_add_shard(st_archive *a, const char *path) {
    a->shards = eft_realloc(a->shards, (size_t)(a->n_shards + 1) * sizeof *a->shards);
    st_shard *sh = &a->shards[a->n_shards];
    memset(sh, 0, sizeof *sh);
    sh->path = eft_strdup(path);
    return a->n_shards++;
}

void st_close(st_archive *a) {
    if (!a) return;
    for (int s = 0; s < a->n_shards; s++) {
        st_shard *sh = &a->shards[s];
        eft_unmap(&sh->map);
        for (size_t i = 0; i < sh->n_meta; i++) {
            eft_free((char *)sh->meta[i].key);
            eft_free((char *)sh->meta[i].value);
        }
        eft_free(sh->meta);
        eft_free(sh->path);
    }
    for (size_t i = 0; i < a->n_tensors; i++) eft_free((char *)a->tensors[i].name);
    eft_free(a->shards);
    eft_free(a->tensors);
    eft_free(a->slots);
    eft_free(a->path);
    eft_free(a);
}

int st_cmp_str(const void *x, const void *y) {
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

long st_find_duplicate(const char *const *names, size_t n) {
    const char **sorted = eft_malloc(n * sizeof *sorted);
    memcpy(sorted, names, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, st_cmp_str);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (!strcmp(sorted[i - 1], sorted[i])) dup = sorted[i];
    eft_free(sorted);
    for (size_t i = 0; dup && i < n; i++)
        if (names[i] == dup) return (long)i;
    return -1;
}

static int cmp_tensor(const void *x, const void *y) {
    return strcmp(((const st_tensor *)x)->name, ((const st_tensor *)y)->name);
}

static uint64_t name_hash(const char *name) {
    return eft_hash64(name, strlen(name));
}

int st_archive_finish(st_archive *a) {
    if (a->n_tensors) qsort(a->tensors, a->n_tensors, sizeof *a->tensors, cmp_tensor);
    /* Names are unique within a shard (st_header.c), so a repeat here spans two shards. */
    for (size_t i = 1; i < a->n_tensors; i++) {
        const st_tensor *p = &a->tensors[i - 1], *t = &a->tensors[i];
        if (!strcmp(p->name, t->name))
            return eft_fail("%s: tensor \"%.200s\" is in two shards, %s and %s. The checkpoint is "
                            "inconsistent; download it again.",
                            a->path, t->name, p->file, t->file);
    }
    a->n_slots = 8;
    while (a->n_slots < 2 * a->n_tensors) a->n_slots *= 2;
    a->slots = eft_calloc(a->n_slots, sizeof *a->slots);
    for (size_t i = 0; i < a->n_tensors; i++) {
        size_t s = name_hash(a->tensors[i].name) & (a->n_slots - 1);
        while (a->slots[s]) s = (s + 1) & (a->n_slots - 1);
        a->slots[s] = (uint32_t)(i + 1);
    }
    return 0;
}

int st_parse(st_archive **out, const void *bytes, size_t n, const char *name) {
    st_archive *a = st_archive_new(name);
    int shard = st_archive_add_shard(a, name);
    if (st_parse_header(a, shard, bytes, n) != 0 || st_archive_finish(a) != 0) {
        st_close(a);
        *out = NULL;
        return -1;
    }
    *out = a;
    return 0;
}

static int open_file(st_archive *a, const char *path) {
    int shard = st_archive_add_shard(a, path);
    st_shard *sh = &a->shards[shard];
    if (eft_map_file(&sh->map, path) != 0) return -1;
    if (st_parse_header(a, shard, sh->map.data, sh->map.size) != 0) return -1;
    return st_archive_finish(a);
}

static bool ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

int st_open(st_archive **out, const char *path) {
    *out = NULL;
    st_archive *a = st_archive_new(path);
    int r;
    if (eft_is_dir(path)) {
        char *single = eft_path_join(path, "model.safetensors");
        char *index = eft_path_join(path, "model.safetensors.index.json");
        if (eft_path_exists(single))
            r = open_file(a, single);
        else if (eft_path_exists(index))
            r = st_open_index(a, index);
        else
            r = eft_fail("%s: the folder holds neither model.safetensors nor "
                         "model.safetensors.index.json. Point to a Hugging Face model folder or "
                         "to a .safetensors file.",
                         path);
        eft_free(single);
        eft_free(index);
    } else if (ends_with(path, ".json")) {
        r = st_open_index(a, path);
    } else {
        r = open_file(a, path);
    }
    if (r != 0) {
        st_close(a);
        return -1;
    }
    *out = a;
    return 0;
}

size_t st_count(const st_archive *a) {
    return a->n_tensors;
}

const st_tensor *st_at(const st_archive *a, size_t i) {
    assert(i < a->n_tensors);
    return &a->tensors[i];
}

const st_tensor *st_find(const st_archive *a, const char *name) {
    for (size_t s = name_hash(name) & (a->n_slots - 1); a->slots[s]; s = (s + 1) & (a->n_slots - 1))
        if (!strcmp(a->tensors[a->slots[s] - 1].name, name)) return &a->tensors[a->slots[s] - 1];
    return NULL;
}

int st_get(const st_archive *a, const char *name, const st_tensor **out) {
    *out = st_find(a, name);
    if (!*out)
        return eft_fail("%s: no tensor \"%.200s\". The checkpoint does not match the model it is "
                        "loaded for.",
                        a->path, name);
    return 0;
}

int st_shard_count(const st_archive *a) {
    return a->n_shards;
}

const char *st_shard_path(const st_archive *a, int shard) {
    assert(shard >= 0 && shard < a->n_shards);
    return a->shards[shard].path;
}

const st_meta *st_metadata(const st_archive *a, int shard, size_t *count) {
    assert(shard >= 0 && shard < a->n_shards);
    *count = a->shards[shard].n_meta;
    return a->shards[shard].meta;
}

const char *st_meta_get(const st_archive *a, int shard, const char *key) {
    size_t n;
    const st_meta *m = st_metadata(a, shard, &n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(m[i].key, key)) return m[i].value;
    return NULL;
}

void st_release(const st_archive *a, const st_tensor *t) {
    assert(t->shard >= 0 && t->shard < a->n_shards);
    if (!a->shards[t->shard].map.data) return; /* the caller's bytes: not ours to drop */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)t->data + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)t->data + t->nbytes) & ~(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED); /* advice: failure is harmless */
}

int st_to_f32(const st_tensor *t, float *dst, size_t n) {
    if (n != (size_t)t->numel)
        return eft_fail("%s: tensor \"%.200s\" has %lld elements where %zu were expected. The "
                        "checkpoint does not match the model.",
                        t->file, t->name, (long long)t->numel, n);
    /* memcpy per element: the data need not be aligned in a file eft did not write. */
    const unsigned char *src = t->data;
    uint16_t h;
    switch (t->dtype) {
    case ST_F32:
        if (n) memcpy(dst, src, n * sizeof *dst);
        return 0;
    case ST_BF16:
        for (size_t i = 0; i < n; i++, src += 2) memcpy(&h, src, 2), dst[i] = eft_bf16_to_f32(h);
        return 0;
    case ST_F16:
        for (size_t i = 0; i < n; i++, src += 2) memcpy(&h, src, 2), dst[i] = eft_f16_to_f32(h);
        return 0;
    default:
        return eft_fail("%s: tensor \"%.200s\" is %s, expected floating point (BF16, F16 or F32). "
                        "The checkpoint does not match the model.",
                        t->file, t->name, st_dtype_name(t->dtype));
    }
}
