/* cmd_tokenize.c: `eft tokenize --tokenizer PATH [--no-special]`.
 *
 * Reads JSONL on stdin, one {"text": "..."} object a line, and writes one {"ids": [...]} line
 * per input line on stdout, in order. Lines are read in batches and each batch is encoded on all
 * threads (tok_encode_batch). A line that is not such an object, or whose text is not UTF-8, is
 * a user error naming the line. --no-special leaves out the post-processor's tokens (<bos>);
 * added tokens written in the text are matched either way, as in Hugging Face.
 */
#include "cli/cli.h"

#include "base/buf.h"
#include "base/err.h"
#include "io/json.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_LINES 8192
#define BATCH_BYTES (16u << 20)

typedef struct batch {
    char *text[BATCH_LINES]; /* owned copies */
    size_t len[BATCH_LINES];
    tok_ids out[BATCH_LINES];
    size_t n, bytes, first_line;
} batch;

/* The text of one JSONL line, or NULL with the error recorded. */
static char *line_text(const char *line, size_t n, size_t lineno, size_t *len) {
    char where[48];
    snprintf(where, sizeof where, "stdin:%zu", lineno);
    cJSON *o = eft_json_parse(line, n, where);
    if (!o) {
        eft_fail("%s: not valid JSON; each line must be an object like {\"text\": \"Hello\"}.",
                 where);
        return NULL;
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
    char *s = NULL;
    if (!cJSON_IsObject(o) || !cJSON_IsString(text)) {
        eft_fail("%s: expected an object with a \"text\" string, like {\"text\": \"Hello\"}.",
                 where);
    } else {
        /* cJSON strings end at a NUL: refuse a \u0000 escape rather than cut the text there */
        for (const char *p = line; (p = strstr(p, "\\u0000")); p++) {
            size_t slashes = 0;
            while (p - slashes > line && p[-1 - (ptrdiff_t)slashes] == '\\') slashes++;
            if (slashes % 2 == 0) {
                eft_fail("%s: the line holds the character U+0000, which eft cannot read from "
                         "JSON. Remove it from the data.",
                         where);
                cJSON_Delete(o);
                return NULL;
            }
        }
        *len = strlen(text->valuestring);
        s = eft_strndup(text->valuestring, *len);
    }
    cJSON_Delete(o);
    return s;
}

static void put_ids(eft_buf *b, const tok_ids *ids) {
    eft_buf_reserve(b, 16 + ids->n * 12);
    char *p = b->data + b->len;
    memcpy(p, "{\"ids\": [", 9), p += 9;
    for (size_t i = 0; i < ids->n; i++) {
        if (i) *p++ = ',', *p++ = ' ';
        char digits[12];
        int nd = 0;
        uint32_t v = (uint32_t)ids->ids[i]; /* ids are never negative */
        do digits[nd++] = (char)('0' + v % 10), v /= 10;
        while (v);
        while (nd) *p++ = digits[--nd];
    }
    memcpy(p, "]}\n", 3), p += 3;
    b->len = (size_t)(p - b->data);
    b->data[b->len] = 0;
}

static int flush(const tok_tokenizer *t, batch *bt, bool special, eft_buf *out) {
    if (tok_encode_batch(t, (const char *const *)bt->text, bt->len, bt->n, special, bt->out)) {
        /* find the line to name: encode one by one (the error path only) */
        for (size_t i = 0; i < bt->n; i++) {
            tok_ids one = {0};
            int rc = tok_encode(t, bt->text[i], bt->len[i], special, &one);
            tok_ids_free(&one);
            if (rc) {
                eft_err_context("stdin:%zu", bt->first_line + i);
                return -1;
            }
        }
        return -1;
    }
    for (size_t i = 0; i < bt->n; i++) {
        put_ids(out, &bt->out[i]);
        tok_ids_clear(&bt->out[i]);
        eft_free(bt->text[i]);
    }
    bt->n = 0, bt->bytes = 0;
    if (fwrite(out->data, 1, out->len, stdout) != out->len)
        return eft_fail_errno("stdout", "Check where the output goes.");
    eft_buf_clear(out);
    return 0;
}

static int run(const tok_tokenizer *t, bool special) {
    batch *bt = eft_calloc(1, sizeof *bt);
    eft_buf out = {0};
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t got;
    int rc = 0;
    while (!rc && (got = getline(&line, &cap, stdin)) >= 0) {
        size_t n = (size_t)got;
        lineno++;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (!n) {
            rc = eft_fail("stdin:%zu: empty line; each line must be {\"text\": ...}.", lineno);
            break;
        }
        if (!bt->n) bt->first_line = lineno;
        bt->text[bt->n] = line_text(line, n, lineno, &bt->len[bt->n]);
        if (!bt->text[bt->n]) {
            rc = -1;
            break;
        }
        bt->bytes += bt->len[bt->n++];
        if (bt->n == BATCH_LINES || bt->bytes >= BATCH_BYTES) rc = flush(t, bt, special, &out);
    }
    if (!rc && bt->n) rc = flush(t, bt, special, &out);
    if (!rc && ferror(stdin)) rc = eft_fail_errno("stdin", "Check the input.");
    if (!rc && fflush(stdout)) rc = eft_fail_errno("stdout", "Check where the output goes.");
    for (size_t i = 0; i < BATCH_LINES; i++) tok_ids_free(&bt->out[i]);
    for (size_t i = 0; i < bt->n; i++) eft_free(bt->text[i]);
    eft_free(bt);
    eft_buf_free(&out);
    free(line);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    bool special = true;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v = cli_flag_value(argc, argv, &i, "--tokenizer", &missing);
        if (missing) return -1;
        if (v)
            path = v;
        else if (!strcmp(argv[i], "--no-special"))
            special = false;
        else
            return eft_fail("tokenize: unknown argument \"%s\". Usage: eft tokenize --tokenizer "
                            "PATH [--no-special] < in.jsonl > out.jsonl",
                            argv[i]);
    }
    if (!path)
        return eft_fail("tokenize: --tokenizer PATH is required (a tokenizer.json or a folder "
                        "holding one).");
    tok_tokenizer *t = tok_load(path);
    if (!t) return -1;
    int rc = run(t, special);
    tok_free(t);
    return rc;
}
