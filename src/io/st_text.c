/* st_text.c: the byte-level checks of a safetensors header, made before cJSON sees it.
 *
 * cJSON does not check UTF-8, decodes a malformed "\u" escape to a NUL byte, accepts raw control
 * characters in strings and numbers such as "0002" or "1.", and recurses up to 1000 levels. The
 * Rust crate (serde_json) refuses all of these, so eft does too, here, in one pass over the bytes.
 * Nothing here knows what a tensor is.
 */
#include "io/st_internal.h"

#include "base/err.h"

#include <stdbool.h>
#include <string.h>

#define NEST_MAX 128 /* serde_json's recursion limit; cJSON's is 1000 */

size_t st_utf8_check(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], lo = 0x80, hi = 0xbf;
        size_t len;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4;
        else
            return i; /* a continuation byte, an overlong lead (c0, c1) or beyond U+10FFFF */
        if (c == 0xe0)
            lo = 0xa0; /* overlong 3-byte forms */
        else if (c == 0xed)
            hi = 0x9f; /* UTF-16 surrogates */
        else if (c == 0xf0)
            lo = 0x90; /* overlong 4-byte forms */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return i;
        i += len;
    }
    return n;
}

/* Length of the valid JSON escape at s[0..n) (s[0] is the backslash), or 0. cJSON decodes a
 * malformed "\u" escape ("\u0h09") to a NUL byte instead of refusing it, so escapes are checked
 * here. */
static size_t escape_len(const unsigned char *s, size_t n) {
    if (n >= 2 && s[1] && strchr("\"\\/bfnrt", s[1])) return 2;
    if (n < 6 || s[1] != 'u') return 0;
    for (int k = 2; k < 6; k++)
        if (!((s[k] >= '0' && s[k] <= '9') || ((s[k] | 0x20) >= 'a' && (s[k] | 0x20) <= 'f')))
            return 0;
    return 6;
}

static bool digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

/* The end of the run of digits starting at s[i]. */
static size_t skip_digits(const unsigned char *s, size_t i, size_t n) {
    while (i < n && digit(s[i])) i++;
    return i;
}

/* Length of the JSON number at s[0..n), or 0 when it is malformed: -?(0|[1-9][0-9]*)(.[0-9]+)?
 * ([eE][+-]?[0-9]+)?, not followed by another digit, '.', 'e' or sign. cJSON hands numbers to
 * strtod, which takes "0002" and "1." as well. */
static size_t number_len(const unsigned char *s, size_t n) {
    size_t i = s[0] == '-', k;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && digit(s[i]))
        i = skip_digits(s, i, n);
    else
        return 0;
    if (i < n && s[i] == '.') {
        k = i + 1;
        if ((i = skip_digits(s, k, n)) == k) return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        k = i + 1;
        if (k < n && (s[k] == '+' || s[k] == '-')) k++;
        if ((i = skip_digits(s, k, n)) == k) return 0;
    }
    if (i < n && (digit(s[i]) || (s[i] && strchr(".eE+-", s[i])))) return 0;
    return i;
}

/* The checks cJSON does not make: strict UTF-8, valid escapes and numbers, no raw control
 * characters, no
 * "\u0000" (names are C strings), nesting within NEST_MAX. Offsets in messages count from the
 * file's start. */
int st_check_text(const char *file, const unsigned char *s, size_t n) {
    size_t bad = st_utf8_check(s, n);
    if (bad < n)
        return eft_fail("%s: byte %zu: the header is not valid UTF-8; a safetensors header is "
                        "UTF-8 JSON. The file is corrupt or not a safetensors file.",
                        file, bad + 8);
    bool in_string = false;
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (in_string) {
            if (c == '"') {
                in_string = false;
            } else if (c == '\\') {
                size_t len = escape_len(s + i, n - i);
                if (len == 0)
                    return eft_fail("%s: byte %zu: an invalid escape in a string. The file is "
                                    "corrupt.",
                                    file, i + 8);
                if (len == 6 && !memcmp(s + i + 2, "0000", 4))
                    return eft_fail("%s: byte %zu: a string holds \"\\u0000\", which "
                                    "eft refuses in names and metadata. The file is corrupt.",
                                    file, i + 8);
                i += len - 1;
            } else if (c < 0x20) {
                return eft_fail("%s: byte %zu: a raw control character inside a "
                                "string is not valid JSON. The file is corrupt.",
                                file, i + 8);
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > NEST_MAX)
                return eft_fail("%s: byte %zu: JSON nested deeper than %d levels; a "
                                "safetensors header needs 3. The file is corrupt or hostile.",
                                file, i + 8, NEST_MAX);
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == '-' || digit(c)) {
            size_t len = number_len(s + i, n - i);
            if (len == 0)
                return eft_fail("%s: byte %zu: a malformed number (JSON allows no leading zeros, "
                                "and needs digits after '.' and 'e'). The file is corrupt.",
                                file, i + 8);
            i += len - 1;
        } else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            return eft_fail("%s: byte %zu: control character 0x%02x is not valid "
                            "JSON. The file is corrupt.",
                            file, i + 8, c);
        }
    }
    return 0;
}
