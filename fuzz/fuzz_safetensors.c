/* fuzz_safetensors.c: libFuzzer target for the safetensors reader (st_parse) and writer.
 *
 * Every input is parsed from memory. A refused input must leave exactly one user error; an
 * accepted one must keep every promise of safetensors.h: each tensor view lies inside the input
 * and all of its bytes can be read, shapes multiply to numel, names are sorted and found by
 * st_find, float tensors widen to fp32, and writing the archive back out and parsing that gives
 * the same tensors. A broken promise aborts, which libFuzzer reports as a crash.
 */
#include "base/err.h"
#include "io/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_safetensors: broken promise: %s (line %d)\n", #cond, __LINE__);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static volatile uint8_t sink;

/* Everything a caller may do with one view. */
static void touch(const st_archive *a, const st_tensor *t, const uint8_t *data, size_t size) {
    const uint8_t *p = t->data;
    CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        CHECK(t->shape[d] >= 0);
        numel *= t->shape[d];
    }
    CHECK(numel == t->numel);
    CHECK(t->nbytes == (size_t)numel * st_dtype_size(t->dtype));
    CHECK(p >= data && p <= data + size && t->nbytes <= (size_t)(data + size - p));
    uint8_t x = 0;
    for (size_t i = 0; i < t->nbytes; i++) x ^= p[i];
    sink = x;
    CHECK(st_find(a, t->name) == t);
    CHECK(t->shard == 0 && !strcmp(t->file, "fuzz"));
    if (t->dtype == ST_F32 || t->dtype == ST_BF16 || t->dtype == ST_F16) {
        float *f = malloc((size_t)numel * sizeof *f + 1);
        CHECK(st_to_f32(t, f, (size_t)numel) == 0);
        free(f);
    } else {
        CHECK(st_to_f32(t, NULL, (size_t)numel) == -1 && eft_err_code() == EFT_ERR_USER);
        eft_err_clear();
    }
}

/* Writes the archive out again and checks that the copy holds the same tensors. */
static void round_trip(const st_archive *a) {
    st_writer *w = st_writer_new();
    size_t n_meta;
    const st_meta *m = st_metadata(a, 0, &n_meta);
    for (size_t i = 0; i < n_meta; i++) st_writer_meta(w, m[i].key, m[i].value);
    for (size_t i = 0; i < st_count(a); i++) {
        const st_tensor *t = st_at(a, i);
        st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f && st_writer_write_to(w, f, "copy") == 0);
    fclose(f);
    st_writer_free(w);
    st_archive *b;
    CHECK(st_parse(&b, buf, len, "copy") == 0);
    CHECK(st_count(b) == st_count(a));
    for (size_t i = 0; i < st_count(a); i++) {
        const st_tensor *s = st_at(a, i), *t = st_at(b, i);
        CHECK(!strcmp(s->name, t->name) && s->dtype == t->dtype && s->ndim == t->ndim);
        CHECK(!memcmp(s->shape, t->shape, (size_t)s->ndim * sizeof s->shape[0]));
        CHECK(s->nbytes == t->nbytes && (!s->nbytes || !memcmp(s->data, t->data, s->nbytes)));
    }
    size_t n_meta_b;
    st_metadata(b, 0, &n_meta_b);
    CHECK(n_meta_b == n_meta);
    for (size_t i = 0; i < n_meta; i++) CHECK(!strcmp(st_meta_get(b, 0, m[i].key), m[i].value));
    st_close(b);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_archive *a = NULL;
    eft_err_clear();
    if (st_parse(&a, data, size, "fuzz") != 0) {
        CHECK(a == NULL && eft_err_code() == EFT_ERR_USER);
        CHECK(!strncmp(eft_err_msg(), "fuzz: ", 6) && !strchr(eft_err_msg(), '\n'));
        return 0;
    }
    CHECK(st_shard_count(a) == 1);
    for (size_t i = 0; i < st_count(a); i++) {
        const st_tensor *t = st_at(a, i);
        if (i) CHECK(strcmp(st_at(a, i - 1)->name, t->name) < 0);
        touch(a, t, data, size);
    }
    round_trip(a);
    st_close(a);
    return 0;
}
