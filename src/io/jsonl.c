/* jsonl.c: JSON Lines reading (see jsonl.h). */
#include "io/jsonl.h"

#include "base/err.h"
#include "io/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int eft_jsonl_open(eft_jsonl *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->path = path;
    return eft_map_file(&r->map, path);
}

cJSON *eft_jsonl_next(eft_jsonl *r) {
    const char *base = (const char *)r->map.data;
    while (r->at < r->map.size) {
        const char *s = base + r->at;
        const char *nl = memchr(s, '\n', r->map.size - r->at);
        size_t len = nl ? (size_t)(nl - s) : r->map.size - r->at;
        r->at += len + (nl ? 1 : 0);
        r->line++;
        size_t k = 0;
        while (k < len && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r')) k++;
        if (k == len) continue;
        char name[1024];
        snprintf(name, sizeof name, "%s (line %d)", r->path, r->line);
        cJSON *v = eft_json_parse(s, len, name);
        if (!v) {
            /* eft_json_parse names "<name>:1:<col>"; say it as path:line:col. */
            const char *msg = eft_err_msg();
            const char *col = strstr(msg, ":1:");
            int c = col ? atoi(col + 3) : 0;
            eft_fail("%s:%d:%d: invalid JSON on this line. Each line of a JSONL file must be "
                     "one complete JSON value.",
                     r->path, r->line, c);
        }
        return v;
    }
    return NULL;
}

void eft_jsonl_close(eft_jsonl *r) {
    eft_unmap(&r->map);
}
