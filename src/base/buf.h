/* buf.h: a growable byte string, for building messages, JSON and paths.
 *
 * Always NUL-terminated; the bytes belong to the buffer until eft_buf_take().
 */
#ifndef EFT_BASE_BUF_H
#define EFT_BASE_BUF_H

#include <stddef.h>

typedef struct eft_buf {
    char *data;
    size_t len, cap;
} eft_buf;

void eft_buf_reserve(eft_buf *b, size_t extra);
void eft_buf_put(eft_buf *b, const void *p, size_t n);
void eft_buf_puts(eft_buf *b, const char *s);
void eft_buf_putc(eft_buf *b, char c);
void eft_buf_printf(eft_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
void eft_buf_json_str(eft_buf *b, const char *s);
/* Appends the shortest decimal that reads back as exactly v ("0.0001", "6.17e-05"); NaN and
 * infinities as NaN, Infinity, -Infinity (the tokens Python's json writes). */
void eft_buf_json_double(eft_buf *b, double v);
void eft_buf_clear(eft_buf *b);
char *eft_buf_take(eft_buf *b); /* caller owns the string; the buffer is empty again */
void eft_buf_free(eft_buf *b);

#endif
