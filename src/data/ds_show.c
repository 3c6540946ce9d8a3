/* ds_show.c: --dump and --debug output of prepared samples (see ds_show.h). */
#include "data/ds_show.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"

#include <string.h>

static void put_int(eft_buf *b, int32_t v) {
    char digits[16];
    int n = 0;
    bool neg = v < 0;
    uint32_t u = neg ? (uint32_t)(-(int64_t)v) : (uint32_t)v;
    do digits[n++] = (char)('0' + u % 10), u /= 10;
    while (u);
    if (neg) eft_buf_putc(b, '-');
    while (n) eft_buf_putc(b, digits[--n]);
}

int ds_dump_jsonl(const char *path, const ds_samples *const *sets, int n) {
    eft_atomic a;
    if (eft_atomic_open(&a, path)) return -1;
    eft_buf b = {0};
    int rc = 0;
    for (int k = 0; k < n && !rc; k++) {
        const ds_samples *s = sets[k];
        for (int64_t i = 0; i < s->n && !rc; i++) {
            eft_buf_clear(&b);
            eft_buf_puts(&b, "{\"input_ids\": [");
            for (int64_t t = s->off[i]; t < s->off[i + 1]; t++) {
                if (t > s->off[i]) eft_buf_puts(&b, ", ");
                put_int(&b, s->ids[t]);
            }
            eft_buf_puts(&b, "], \"labels\": [");
            for (int64_t t = s->off[i]; t < s->off[i + 1]; t++) {
                if (t > s->off[i]) eft_buf_puts(&b, ", ");
                put_int(&b, ds_label(s, t));
            }
            eft_buf_puts(&b, "]}\n");
            if (fwrite(b.data, 1, b.len, a.f) != b.len) rc = -1;
        }
    }
    eft_buf_free(&b);
    if (rc) {
        eft_atomic_abort(&a);
        return eft_fail_errno(path, "Check the disk has room.");
    }
    return eft_atomic_commit(&a);
}

/* A token's text on one line: control characters escaped. */
static void put_piece(eft_buf *b, const tok_tokenizer *t, int32_t id) {
    char *s = tok_decode(t, &id, 1, false);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n')
            eft_buf_puts(b, "\\n");
        else if (*p == '\t')
            eft_buf_puts(b, "\\t");
        else if (*p == '\r')
            eft_buf_puts(b, "\\r");
        else if (*p < 0x20)
            eft_buf_printf(b, "\\x%02x", *p);
        else
            eft_buf_putc(b, (char)*p);
    }
    eft_free(s);
}

void ds_debug_print(FILE *f, const tok_tokenizer *t, const ds_samples *s, int64_t count,
                    bool color) {
    eft_buf b = {0};
    for (int64_t i = 0; i < count && i < s->n; i++) {
        eft_buf_clear(&b);
        eft_buf_printf(&b, "sample %lld: %lld tokens, %lld trained\n", (long long)i,
                       (long long)ds_len(s, i), (long long)ds_sample_trained(s, i));
        for (int64_t k = s->off[i]; k < s->off[i + 1]; k++) {
            int32_t label = ds_label(s, k);
            if (k > s->off[i]) eft_buf_putc(&b, ' ');
            if (color) eft_buf_puts(&b, label != DS_IGNORE ? "\x1b[32m" : "\x1b[90m");
            put_piece(&b, t, s->ids[k]);
            eft_buf_printf(&b, "(%d, %d)", label, s->ids[k]);
            if (color) eft_buf_puts(&b, "\x1b[0m");
        }
        eft_buf_putc(&b, '\n');
        fputs(b.data, f);
    }
    eft_buf_free(&b);
}
