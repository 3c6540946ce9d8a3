/* chat_text.c: the two string filters the Gemma templates apply to content: Jinja's `trim`
 * (Python's str.strip(), Unicode whitespace included) and gemma4's strip_thinking macro.
 *
 * Whitespace is Python's str.isspace() set, matched on its UTF-8 bytes: U+0009..000D,
 * U+001C..0020, U+0085, U+00A0, U+1680, U+2000..200A, U+2028, U+2029, U+202F, U+205F, U+3000.
 * (U+200B, the zero-width space, is not one of them.)
 */
#include "text/chat_internal.h"

#include <string.h>

/* The whitespace characters above that take 3 bytes in UTF-8 (U+2000..200A as a range). */
static bool space3(const unsigned char *c) {
    if (c[0] == 0xE2 && c[1] == 0x80)
        return c[2] <= 0x8A || c[2] == 0xA8 || c[2] == 0xA9 || c[2] == 0xAF;
    return (c[0] == 0xE1 && c[1] == 0x9A && c[2] == 0x80) ||
           (c[0] == 0xE2 && c[1] == 0x81 && c[2] == 0x9F) ||
           (c[0] == 0xE3 && c[1] == 0x80 && c[2] == 0x80);
}

static bool space1(unsigned char c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
}

static bool space2(const unsigned char *c) {
    return c[0] == 0xC2 && (c[1] == 0x85 || c[1] == 0xA0);
}

/* Length of the whitespace character that starts s[0..n), or 0. */
static size_t space_at(const unsigned char *s, size_t n) {
    if (n >= 1 && space1(s[0])) return 1;
    if (n >= 2 && space2(s)) return 2;
    if (n >= 3 && (s[0] == 0xE1 || s[0] == 0xE2 || s[0] == 0xE3) && space3(s)) return 3;
    return 0;
}

/* Length of the whitespace character that ends s[0..n), or 0. A lead byte is never a
 * continuation byte, so a match at the end is the whole character. */
static size_t space_before(const unsigned char *s, size_t n) {
    if (n >= 1 && space1(s[n - 1])) return 1;
    if (n >= 2 && space2(s + n - 2)) return 2;
    if (n >= 3 && space3(s + n - 3)) return 3;
    return 0;
}

void chat_trim(const char *s, size_t n, size_t *b, size_t *e) {
    const unsigned char *u = (const unsigned char *)s;
    size_t lo = 0, hi = n, k;
    while (lo < hi && (k = space_at(u + lo, hi - lo)) > 0) lo += k;
    while (hi > lo && (k = space_before(u + lo, hi - lo)) > 0) hi -= k;
    *b = lo;
    *e = hi;
}

chat_span chat_put_trimmed(eft_buf *out, const char *s) {
    size_t b, e, at = out->len;
    chat_trim(s, strlen(s), &b, &e);
    eft_buf_put(out, s + b, e - b);
    return (chat_span){at, out->len};
}

/* The first occurrence of pat in s[0..n), or NULL. */
static const char *find(const char *s, size_t n, const char *pat) {
    size_t m = strlen(pat);
    for (size_t i = 0; i + m <= n; i++)
        if (s[i] == pat[0] && memcmp(s + i, pat, m) == 0) return s + i;
    return NULL;
}

chat_span chat_put_stripped(eft_buf *out, const char *s) {
    static const char open[] = "<|channel>", close[] = "<channel|>";
    size_t at = out->len, n = strlen(s);
    const char *end = s + n;
    for (const char *part = s;;) {
        const char *stop = find(part, (size_t)(end - part), close);
        const char *part_end = stop ? stop : end;
        const char *cut = find(part, (size_t)(part_end - part), open);
        eft_buf_put(out, part, (size_t)((cut ? cut : part_end) - part));
        if (!stop) break;
        part = stop + strlen(close);
    }
    size_t b, e;
    chat_trim(out->data + at, out->len - at, &b, &e);
    memmove(out->data + at, out->data + at + b, e - b);
    out->len = at + (e - b);
    out->data[out->len] = '\0';
    return (chat_span){at, out->len};
}
