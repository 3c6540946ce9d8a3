/* tok_decode.c: token ids back to text, with the tokenizer.json decoder.
 *
 * As Hugging Face decodes: ids become their pieces (an added token's content first), ids that
 * name no token are dropped, special tokens too when asked; then each decoder step rewrites the
 * list of strings (Replace and Strip per string, ByteFallback turning runs of "<0xHH>" pieces
 * into their UTF-8 text, or one U+FFFD per byte when the run is not valid UTF-8, Fuse joining
 * all), and the strings are joined. Without a decoder, pieces are joined with spaces.
 */
#include "text/tok_internal.h"

#include "base/buf.h"
#include "base/err.h"

#include <string.h>

/* A list of strings: views into one buffer. */
typedef struct strlist {
    eft_buf text;
    size_t *off, *len;
    size_t n, cap;
} strlist;

static void list_add(strlist *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->off = eft_realloc(l->off, l->cap * sizeof *l->off);
        l->len = eft_realloc(l->len, l->cap * sizeof *l->len);
    }
    l->off[l->n] = l->text.len;
    l->len[l->n++] = n;
    eft_buf_put(&l->text, s, n);
}

static void list_free(strlist *l) {
    eft_buf_free(&l->text);
    eft_free(l->off);
    eft_free(l->len);
}

static const char *item(const strlist *l, size_t i) {
    return l->text.data + l->off[i];
}

static int hex(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The byte a "<0xHH>" piece stands for, or -1. Rust's u8::from_str_radix, which HF uses,
 * also reads "+X" as one hex digit. */
static int byte_piece(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    if (s[3] == '+') return hex(s[4]);
    int hi = hex(s[3]), lo = hex(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static void replace_in(strlist *out, const char *s, size_t n, const tok_replace *r) {
    eft_buf b = {0};
    for (size_t i = 0; i < n;) {
        if (i + r->pat_len <= n && !memcmp(s + i, r->pat, r->pat_len)) {
            eft_buf_put(&b, r->content, r->content_len);
            i += r->pat_len;
        } else {
            eft_buf_putc(&b, s[i++]);
        }
    }
    list_add(out, b.data ? b.data : "", b.len);
    eft_buf_free(&b);
}

static void flush_bytes(strlist *out, eft_buf *bytes, size_t count) {
    if (!count) return;
    if (tok_utf8_check((const unsigned char *)bytes->data, bytes->len) == bytes->len) {
        list_add(out, bytes->data, bytes->len);
    } else {
        for (size_t k = 0; k < count; k++) list_add(out, "\xEF\xBF\xBD", 3);
    }
    eft_buf_clear(bytes);
}

static void strip(strlist *out, const char *s, size_t n, const tok_dec_step *st) {
    /* character starts, so that start/stop count characters */
    size_t nch = 0, *at = eft_malloc((n + 1) * sizeof *at);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        at[nch++] = i;
        i += (size_t)tok_utf8_decode((const unsigned char *)s + i, &cp);
    }
    at[nch] = n;
    size_t a = 0, b = nch;
    for (size_t i = 0; i < nch && i < (size_t)st->strip_start; i++) {
        uint32_t cp;
        tok_utf8_decode((const unsigned char *)s + at[i], &cp);
        if (cp != st->strip_cp) break;
        a = i + 1;
    }
    for (size_t i = 0; i < nch && i < (size_t)st->strip_stop; i++) {
        uint32_t cp;
        tok_utf8_decode((const unsigned char *)s + at[nch - 1 - i], &cp);
        if (cp != st->strip_cp) break;
        b = nch - 1 - i;
    }
    list_add(out, s + at[a], a < b ? at[b] - at[a] : 0);
    eft_free(at);
}

static void apply(const tok_dec_step *st, const strlist *in, strlist *out) {
    eft_buf bytes = {0};
    size_t nbytes = 0;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = item(in, i);
        size_t n = in->len[i];
        switch (st->kind) {
        case TOK_DEC_REPLACE:
            replace_in(out, s, n, &st->replace);
            break;
        case TOK_DEC_STRIP:
            strip(out, s, n, st);
            break;
        case TOK_DEC_FUSE:
            if (i == 0) list_add(out, "", 0);
            eft_buf_put(&out->text, s, n);
            out->len[0] += n;
            break;
        case TOK_DEC_BYTE_FALLBACK: {
            int b = byte_piece(s, n);
            if (b >= 0) {
                char c = (char)b;
                eft_buf_put(&bytes, &c, 1);
                nbytes++;
                break;
            }
            flush_bytes(out, &bytes, nbytes);
            nbytes = 0;
            list_add(out, s, n);
            break;
        }
        }
    }
    flush_bytes(out, &bytes, nbytes);
    eft_buf_free(&bytes);
}

char *tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, bool skip_special) {
    strlist cur = {0};
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->vocab_size || !t->piece[id]) continue;
        if (skip_special && t->is_special[id]) continue;
        list_add(&cur, t->piece[id], t->piece_len[id]);
    }
    eft_buf res = {0};
    if (!t->has_decoder) {
        for (size_t i = 0; i < cur.n; i++) {
            if (i) eft_buf_putc(&res, ' ');
            eft_buf_put(&res, item(&cur, i), cur.len[i]);
        }
    } else {
        for (int k = 0; k < t->n_dec; k++) {
            strlist next = {0};
            apply(&t->dec[k], &cur, &next);
            list_free(&cur);
            cur = next;
        }
        for (size_t i = 0; i < cur.n; i++) eft_buf_put(&res, item(&cur, i), cur.len[i]);
    }
    list_free(&cur);
    if (!res.data) eft_buf_puts(&res, "");
    return eft_buf_take(&res);
}
