/* ds_show.h: prepared samples shown to people and tools: the --dump JSON Lines file and the
 * --debug view of tokens and labels (`eft preprocess`, design.md section 5). */
#ifndef EFT_DATA_DS_SHOW_H
#define EFT_DATA_DS_SHOW_H

#include "data/ds_samples.h"
#include "text/tokenizer.h"

#include <stdbool.h>
#include <stdio.h>

/* Writes one line per sample of each set in sets[0..n), in order, atomically:
 * {"input_ids": [...], "labels": [...]} with -100 where a token is not trained. */
int ds_dump_jsonl(const char *path, const ds_samples *const *sets, int n);

/* Prints samples [0, count) of s, one line per sample: each token as Axolotl's --debug shows it,
 * `text(label, id)`, label -100 for a token that is not trained; with color, trained tokens are
 * green and the others grey. */
void ds_debug_print(FILE *f, const tok_tokenizer *t, const ds_samples *s, int64_t count,
                    bool color);

#endif
