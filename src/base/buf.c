/* buf.c: growable strings (see buf.h). */
#include "base/buf.h"

#include "base/err.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eft_buf_reserve(eft_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = eft_realloc(b->data, cap);
    b->cap = cap;
}

void eft_buf_put(eft_buf *b, const void *p, size_t n) {
    eft_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void eft_buf_puts(eft_buf *b, const char *s) { eft_buf_put(b, s, strlen(s)); }
void eft_buf_putc(eft_buf *b, char c) { eft_buf_put(b, &c, 1); }

void eft_buf_printf(eft_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    eft_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

void eft_buf_json_str(eft_buf *b, const char *s) {
    eft_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': eft_buf_puts(b, "\\\""); break;
        case '\\': eft_buf_puts(b, "\\\\"); break;
        case '\n': eft_buf_puts(b, "\\n"); break;
        case '\r': eft_buf_puts(b, "\\r"); break;
        case '\t': eft_buf_puts(b, "\\t"); break;
        case '\b': eft_buf_puts(b, "\\b"); break;
        case '\f': eft_buf_puts(b, "\\f"); break;
        default:
            if (*p < 0x20) eft_buf_printf(b, "\\u%04x", *p);
            else eft_buf_putc(b, (char)*p);
        }
    }
    eft_buf_putc(b, '"');
}

void eft_buf_json_double(eft_buf *b, double v) {
    if (isnan(v)) return eft_buf_puts(b, "NaN");
    if (isinf(v)) return eft_buf_puts(b, v > 0 ? "Infinity" : "-Infinity");
    char s[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (strtod(s, NULL) == v) break;
    }
    /* Python writes integral floats as "1.0": keep a float looking like a float. */
    if (!strpbrk(s, ".eEn")) strcat(s, ".0");
    eft_buf_puts(b, s);
}

void eft_buf_clear(eft_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

char *eft_buf_take(eft_buf *b) {
    char *s = b->data ? b->data : eft_strdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

void eft_buf_free(eft_buf *b) {
    eft_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
