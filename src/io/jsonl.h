/* jsonl.h: JSON Lines files, one object per line, with errors that name file:line.
 *
 * Blank lines are skipped (as `datasets` does). The file is mapped, not read line by line
 * through stdio, so very long lines cost nothing extra.
 */
#ifndef EFT_IO_JSONL_H
#define EFT_IO_JSONL_H

#include "base/fs.h"

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct eft_jsonl {
    eft_mapped map;
    const char *path;
    size_t at; /* byte offset of the next line */
    int line;  /* 1-based number of the line last returned */
} eft_jsonl;

int eft_jsonl_open(eft_jsonl *r, const char *path);
/* The next line's value (owned by the caller: cJSON_Delete), or NULL at the end (no error
 * recorded) or on a syntax error (recorded as "path:line:col: invalid JSON ..."). */
cJSON *eft_jsonl_next(eft_jsonl *r);
void eft_jsonl_close(eft_jsonl *r);

#endif
