/* err.c: the error record and checked allocation (see err.h). */
#include "base/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_CAP 2048

static _Thread_local char err_msg[ERR_CAP];
static _Thread_local int err_code;

static int record(int code, const char *fmt, va_list ap) {
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    /* One line: a message never carries a newline into the terminal. */
    for (char *p = err_msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    err_code = code;
    return -1;
}

int eft_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record(EFT_ERR_USER, fmt, ap);
    va_end(ap);
    return -1;
}

int eft_fail_internal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record(EFT_ERR_INTERNAL, fmt, ap);
    va_end(ap);
    return -1;
}

int eft_fail_errno(const char *what, const char *hint) {
    int e = errno;
    return eft_fail("%s: %s.%s%s", what, strerror(e), hint && *hint ? " " : "", hint ? hint : "");
}

void eft_err_context(const char *fmt, ...) {
    char ctx[1024], old[ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, err_msg, sizeof old);
    size_t n = strlen(ctx);
    if (n > sizeof err_msg - 3) n = sizeof err_msg - 3;
    memcpy(err_msg, ctx, n);
    memcpy(err_msg + n, ": ", 2);
    size_t room = sizeof err_msg - n - 3, m = strlen(old);
    if (m > room) m = room;
    memcpy(err_msg + n + 2, old, m);
    err_msg[n + 2 + m] = 0;
    if (err_code == EFT_OK) err_code = EFT_ERR_INTERNAL; /* context without a failure: a bug */
}

const char *eft_err_msg(void) { return err_msg; }
int eft_err_code(void) { return err_code; }
void eft_err_clear(void) {
    err_msg[0] = 0;
    err_code = EFT_OK;
}

static void out_of_memory(size_t n) {
    fprintf(stderr, "eft: out of memory (asked for %zu bytes). Lower sequence_len or "
                    "micro_batch_size, or free memory, and run again.\n", n);
    exit(EFT_ERR_INTERNAL);
}

void *eft_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *eft_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) out_of_memory(count * size);
    return p;
}

void *eft_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

char *eft_strdup(const char *s) { return eft_strndup(s, strlen(s)); }

char *eft_strndup(const char *s, size_t n) {
    char *d = eft_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *eft_asprintf(const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = eft_malloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

void eft_free(void *p) { free(p); }

void *eft_malloc_aligned(size_t n) {
    void *p = NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) out_of_memory(n);
    return p;
}

void eft_free_aligned(void *p) { free(p); }
