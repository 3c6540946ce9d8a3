/* metrics.c: metrics.jsonl, one JSON line per log entry (see metrics.h). */
#include "train/metrics.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"

#include <assert.h>
#include <string.h>
#include <unistd.h>

void met_add(met_entry *e, const char *key, double v) {
    assert(e->n < MET_MAX_FIELDS);
    e->f[e->n++] = (met_field){key, false, v, 0};
}

void met_add_int(met_entry *e, const char *key, int64_t v) {
    assert(e->n < MET_MAX_FIELDS);
    e->f[e->n++] = (met_field){key, true, 0, v};
}

const met_field *met_get(const met_entry *e, const char *key) {
    for (int i = 0; i < e->n; i++)
        if (!strcmp(e->f[i].key, key)) return &e->f[i];
    return NULL;
}

static void entry_json(eft_buf *b, const met_entry *e) {
    eft_buf_putc(b, '{');
    for (int i = 0; i < e->n; i++) {
        if (i) eft_buf_puts(b, ", ");
        eft_buf_json_str(b, e->f[i].key);
        eft_buf_puts(b, ": ");
        if (e->f[i].is_int)
            eft_buf_printf(b, "%lld", (long long)e->f[i].i);
        else
            eft_buf_json_double(b, e->f[i].v);
    }
    eft_buf_putc(b, '}');
}

void met_print_json(FILE *f, const met_entry *e) {
    eft_buf b = {0};
    entry_json(&b, e);
    fputs(b.data, f);
    eft_buf_free(&b);
}

static void keep(met_log *m, const met_entry *e) {
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->e = eft_realloc(m->e, (size_t)m->cap * sizeof *m->e);
    }
    m->e[m->n++] = *e;
}

int met_open(met_log *m, const char *output_dir, const met_entry *history, int n_history) {
    memset(m, 0, sizeof *m);
    m->path = eft_path_join(output_dir, "metrics.jsonl");
    if (history) {
        eft_buf b = {0};
        for (int i = 0; i < n_history; i++) {
            entry_json(&b, &history[i]);
            eft_buf_putc(&b, '\n');
            keep(m, &history[i]);
        }
        int rc = eft_write_file_atomic(m->path, b.data ? b.data : "", b.len);
        eft_buf_free(&b);
        if (rc) return -1;
    } else if (eft_write_file_atomic(m->path, "", 0)) {
        return -1;
    }
    m->f = fopen(m->path, "ab");
    if (!m->f) return eft_fail_errno(m->path, "Check that output_dir is writable.");
    return 0;
}

int met_write(met_log *m, const met_entry *e) {
    keep(m, e);
    eft_buf b = {0};
    entry_json(&b, e);
    eft_buf_putc(&b, '\n');
    bool bad = fwrite(b.data, 1, b.len, m->f) != b.len || fflush(m->f) != 0;
    eft_buf_free(&b);
    if (!bad) fsync(fileno(m->f));
    return bad ? eft_fail_errno(m->path, "Writing the metrics failed (is the disk full?).") : 0;
}

void met_close(met_log *m) {
    if (m->f) fclose(m->f);
    eft_free(m->path);
    eft_free(m->e);
    memset(m, 0, sizeof *m);
}
