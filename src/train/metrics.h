/* metrics.h: what a run records: metrics.jsonl and trainer_state.json's log_history.
 *
 * One log entry per logging step and per evaluation, shaped like Hugging Face Trainer's
 * log_history so that existing tools read it (design.md section 6): a training entry has step,
 * epoch, loss, grad_norm, learning_rate, plus eft's tokens_per_second and peak_memory_gb; an
 * eval entry step, epoch, eval_loss, eval_tokens. Entries are appended to output_dir/metrics.jsonl
 * as they happen (flushed and synced line by line) and kept in memory for trainer_state.json.
 *
 * On resume the entries up to the checkpoint's step are reloaded from the checkpoint's
 * trainer_state.json and metrics.jsonl is rewritten (atomically) to match, so a run that stopped
 * after its last checkpoint leaves no stale lines behind.
 */
#ifndef EFT_TRAIN_METRICS_H
#define EFT_TRAIN_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* One value of an entry: a number (double), or an integer. */
typedef struct met_field {
    const char *key; /* static string */
    bool is_int;
    double v;
    int64_t i;
} met_field;

enum { MET_MAX_FIELDS = 16 };

typedef struct met_entry {
    int n;
    met_field f[MET_MAX_FIELDS];
} met_entry;

typedef struct met_log {
    char *path; /* output_dir/metrics.jsonl (owned) */
    FILE *f;
    met_entry *e; /* every entry so far (owned) */
    int n, cap;
} met_log;

/* Opens output_dir/metrics.jsonl for appending (creating it). `history` entries, when given,
 * replace the file's contents first (resume). */
int met_open(met_log *m, const char *output_dir, const met_entry *history, int n_history);
void met_close(met_log *m);

/* Entry builders. */
void met_add(met_entry *e, const char *key, double v);
void met_add_int(met_entry *e, const char *key, int64_t v);
const met_field *met_get(const met_entry *e, const char *key);

/* Appends the entry (one JSON line, fsync'd) and keeps it. */
int met_write(met_log *m, const met_entry *e);

/* Writes one entry as a JSON object (keys in the order added) into f. */
void met_print_json(FILE *f, const met_entry *e);

#endif
