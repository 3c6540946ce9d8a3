/* fuzz_jsonl.c: libFuzzer target for the dataset reader (ds_source.h) and the formats behind it.
 *
 * The first input byte picks a dataset type (completion, alpaca, input_output, pre-tokenized,
 * chat_template with ShareGPT keys); the rest is the data file, read as datasets reads a .jsonl
 * file (JSON Lines, a JSON list, or an object holding a list). Every row is formatted with a
 * byte-level tokenizer. What must hold: a refused input leaves a message; an accepted one gives
 * samples whose offsets are consistent, whose ids are in the vocabulary and whose labels are
 * -100 or in the vocabulary; the samples then filter and pack into micro-batches in which
 * every sample appears once and position ids restart at 0 in every document.
 * Seeds: fuzz/corpus/jsonl/ (a few rows of each type).
 */
#include "base/buf.h"
#include "base/err.h"
#include "data/ds_filter.h"
#include "data/ds_format.h"
#include "data/ds_source.h"
#include "data/pack.h"
#include "io/config.h"
#include "text/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N_TYPES = 5, VOCAB = 262 };

static const char *const types[N_TYPES] = {
    "type: completion",
    "type: alpaca",
    "type: input_output",
    "ds_type: json",
    ("type: chat_template, field_messages: conversations, message_property_mappings: {role: "
     "from, content: value}"),
};

/* <pad> <eos> <bos> <unk>, one token per byte (4 + b), <|turn> 260, <turn|> 261. */
static tok_tokenizer *byte_tokenizer(void) {
    eft_buf b = {0};
    eft_buf_puts(&b, "{\"added_tokens\":[");
    const char *sp[] = {"<pad>", "<eos>", "<bos>", "<unk>", "<|turn>", "<turn|>"};
    const int id[] = {0, 1, 2, 3, 260, 261};
    for (int i = 0; i < 6; i++)
        eft_buf_printf(&b, "%s{\"id\":%d,\"content\":\"%s\",\"special\":true}", i ? "," : "", id[i],
                       sp[i]);
    eft_buf_puts(&b, "],\"normalizer\":null,\"pre_tokenizer\":null,\"post_processor\":{\"type\":"
                     "\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<bos>\","
                     "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
                     "\"special_tokens\":{\"<bos>\":{\"id\":\"<bos>\",\"ids\":[2],\"tokens\":["
                     "\"<bos>\"]}}},\"decoder\":null,\"model\":{\"type\":\"BPE\",\"unk_token\":"
                     "\"<unk>\",\"byte_fallback\":true,\"vocab\":{\"<pad>\":0,\"<eos>\":1,"
                     "\"<bos>\":2,\"<unk>\":3");
    for (int c = 0; c < 256; c++) eft_buf_printf(&b, ",\"<0x%02X>\":%d", c, 4 + c);
    eft_buf_puts(&b, ",\"<|turn>\":260,\"<turn|>\":261},\"merges\":[]}}");
    const char *cfg = "{\"eos_token\":\"<eos>\"}";
    tok_tokenizer *t = tok_load_mem(b.data, b.len, cfg, strlen(cfg), "fuzz-tokenizer");
    eft_buf_free(&b);
    if (!t) abort();
    return t;
}

typedef struct world {
    tok_tokenizer *tok;
    char *path;
    eft_config cfg[N_TYPES];
} world;

static world *the_world(void) {
    static world w;
    if (w.tok) return &w;
    w.tok = byte_tokenizer();
    w.path = eft_asprintf("/tmp/eft-fuzz-jsonl.%d.jsonl", (int)getpid());
    for (int i = 0; i < N_TYPES; i++) {
        char *yaml = eft_asprintf("sequence_len: 24\nchat_template: gemma4\neot_tokens: "
                                  "[\"<turn|>\"]\ndatasets: [{path: %s, %s}]\n",
                                  w.path, types[i]);
        if (cfg_load_string(&w.cfg[i], yaml, "fuzz.yaml")) abort();
        w.cfg[i].datasets.v[0].local_path = eft_strdup(w.path);
        eft_free(yaml);
    }
    return &w;
}

static void check_samples(const ds_samples *s) {
    if (s->off && s->off[0] != 0) abort();
    for (int64_t i = 0; i < s->n; i++)
        if (s->off[i] > s->off[i + 1]) abort();
    if (s->n && s->off[s->n] != s->n_tokens) abort();
    for (int64_t t = 0; t < s->n_tokens; t++) {
        int32_t l = ds_label(s, t);
        if (s->ids[t] < 0 || s->ids[t] >= VOCAB || (l != -100 && (l < 0 || l >= VOCAB))) abort();
    }
}

/* Packs the samples and checks every micro-batch of one epoch. */
static void check_packing(const ds_samples *s) {
    pack_config pc = {.packed = true,
                      .sequence_len = 24,
                      .micro_batch_size = 2,
                      .bin_size = 4,
                      .seed = 3,
                      .epochs = 1};
    pack_loader L;
    if (pack_loader_init(&L, s, &pc)) abort();
    int32_t *ids = malloc((size_t)L.max_tokens * 4 + 4),
            *labels = malloc((size_t)L.max_tokens * 4 + 4);
    int32_t *pos = malloc((size_t)L.max_tokens * 4 + 4), *rows = malloc((size_t)L.max_rows * 4 + 8);
    pack_batch b = {ids, labels, pos, rows, 0, 0, 0, 0};
    int64_t docs = 0;
    for (int64_t m = 0; m < L.n_mb; m++) {
        pack_fill(&L, m, &b);
        if (b.n > L.capacity || b.docs > 4 || b.n < 1) abort();
        for (int t = 0; t < b.n; t++) {
            if (pos[t] == 0 && labels[t] != -100) abort(); /* first label of a document masked */
            if (t > 0 && pos[t] != 0 && pos[t] != pos[t - 1] + 1) abort();
        }
        docs += b.docs;
    }
    if (docs != s->n) abort();
    free(ids), free(labels), free(pos), free(rows);
    pack_loader_free(&L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    world *w = the_world();
    const eft_config *c = &w->cfg[data[0] % N_TYPES];
    FILE *f = fopen(w->path, "wb");
    if (!f) abort();
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    ds_source src;
    ds_format fmt;
    ds_samples out;
    ds_samples_init(&out);
    int rc = ds_source_open(&src, &c->datasets.v[0], "datasets[0]", "train", 1);
    int frc = rc ? -1 : ds_format_init(&fmt, c, &c->datasets.v[0], "datasets[0]", w->tok, 24);
    if (frc && !rc) abort(); /* the config is fixed and good */
    ds_row row;
    int got = 0;
    while (!rc && (got = ds_source_next(&src, &row)) == 1) {
        ds_at at = {&src, &row};
        ds_skip skip;
        if (ds_format_row(&fmt, row.v, &at, &out, &skip)) {
            if (!*eft_err_msg()) abort();
            eft_err_clear();
        }
        cJSON_Delete(row.v);
    }
    if ((rc || got < 0) && !*eft_err_msg()) abort(); /* a failure must say why */
    eft_err_clear();
    check_samples(&out);
    ds_samples kept;
    ds_filter_counts fc = {0};
    int64_t bad;
    if (ds_filter(&out, 24, 2, DS_EXCESS_TRUNCATE, &kept, &fc, NULL, &bad)) abort();
    check_samples(&kept);
    if (kept.n) check_packing(&kept);
    ds_samples_free(&kept);
    ds_samples_free(&out);
    if (!frc) ds_format_free(&fmt);
    ds_source_close(&src); /* also after a failed open */
    return 0;
}
