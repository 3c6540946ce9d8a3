/* ds_cache.c: the prepared-data cache key and file (see ds_cache.h). */
#include "data/ds_cache.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"
#include "base/hash.h"
#include "base/log.h"
#include "io/json.h"

#include <string.h>
#include <sys/stat.h>

/* ---- the key ---- */

static void h_tag(eft_hash *h, const char *tag) {
    eft_hash_str(h, tag);
}
static void h_str(eft_hash *h, const char *tag, const cfg_str *s) {
    h_tag(h, tag);
    eft_hash_str(h, s->v ? s->v : "\x01(unset)");
}
static void h_int(eft_hash *h, const char *tag, const cfg_int *x) {
    h_tag(h, tag);
    eft_hash_u64(h, x->set);
    eft_hash_u64(h, (uint64_t)x->v);
}
static void h_bool(eft_hash *h, const char *tag, const cfg_bool *x) {
    h_tag(h, tag);
    eft_hash_u64(h, x->set);
    eft_hash_u64(h, x->v);
}
static void h_float(eft_hash *h, const char *tag, const cfg_float *x) {
    h_tag(h, tag);
    uint64_t bits;
    memcpy(&bits, &x->v, sizeof bits);
    eft_hash_u64(h, bits);
}
static void h_list(eft_hash *h, const char *tag, const cfg_strlist *l) {
    h_tag(h, tag);
    eft_hash_u64(h, (uint64_t)(l->set ? l->n : -1));
    for (int i = 0; i < l->n; i++) eft_hash_str(h, l->v[i]);
}
static void h_map(eft_hash *h, const char *tag, const cfg_map *m) {
    h_tag(h, tag);
    eft_hash_u64(h, (uint64_t)m->n);
    for (int i = 0; i < m->n; i++) {
        const cfg_map_item *it = &m->items[i];
        eft_hash_str(h, it->key);
        eft_hash_u64(h, (uint64_t)it->is_list * 1000 + (uint64_t)it->n);
        for (int k = 0; k < it->n; k++) {
            eft_hash_u64(h, it->v[k].type);
            eft_hash_str(h, it->v[k].text ? it->v[k].text : "");
        }
    }
}

/* A file's contents, or its path, size and mtime when it is too big to read for a key. */
static int h_file(eft_hash *h, const char *path) {
    struct stat st;
    if (stat(path, &st)) return eft_fail_errno(path, "Check the file exists and can be read.");
    eft_hash_str(h, path);
    eft_hash_u64(h, (uint64_t)st.st_size);
    if (st.st_size > ((off_t)1 << 30)) {
        eft_hash_u64(h, (uint64_t)st.st_mtim.tv_sec);
        eft_hash_u64(h, (uint64_t)st.st_mtim.tv_nsec);
        return 0;
    }
    eft_mapped m;
    if (eft_map_file(&m, path)) return -1;
    eft_hash_bytes(h, m.data, m.size);
    eft_unmap(&m);
    return 0;
}

static void h_dataset(eft_hash *h, const cfg_dataset *d) {
    h_str(h, "path", &d->path), h_str(h, "split", &d->split), h_str(h, "name", &d->name);
    h_str(h, "revision", &d->revision), h_str(h, "ds_type", &d->ds_type);
    h_str(h, "type", &d->type);
    const cfg_dataset_type *t = &d->custom;
    h_str(h, "t.system_prompt", &t->system_prompt), h_str(h, "t.system_format", &t->system_format);
    h_str(h, "t.field_system", &t->field_system);
    h_str(h, "t.field_instruction", &t->field_instruction);
    h_str(h, "t.field_input", &t->field_input), h_str(h, "t.field_output", &t->field_output);
    h_str(h, "t.format", &t->format), h_str(h, "t.no_input_format", &t->no_input_format);
    h_list(h, "data_files", &d->data_files);
    h_int(h, "shards", &d->shards), h_int(h, "shards_idx", &d->shards_idx);
    h_str(h, "chat_template", &d->chat_template), h_str(h, "field_messages", &d->field_messages);
    h_map(h, "message_property_mappings", &d->message_property_mappings);
    h_str(h, "message_field_role", &d->message_field_role);
    h_str(h, "message_field_content", &d->message_field_content);
    h_map(h, "roles", &d->roles);
    h_list(h, "roles_to_train", &d->roles_to_train);
    h_str(h, "train_on_eos", &d->train_on_eos), h_str(h, "train_on_eot", &d->train_on_eot);
    h_str(h, "message_field_training", &d->message_field_training);
    h_str(h, "message_field_training_detail", &d->message_field_training_detail);
    h_str(h, "field_tools", &d->field_tools), h_str(h, "field_thinking", &d->field_thinking);
    h_str(h, "template_thinking_key", &d->template_thinking_key);
    h_bool(h, "drop_system_message", &d->drop_system_message);
    h_str(h, "field", &d->field);
    h_tag(h, "local_path");
    eft_hash_str(h, d->local_path ? d->local_path : "");
}

/* The tokenizer's files: a tokenizer.json (or a folder holding one) and its companions. */
static int h_tokenizer(eft_hash *h, const char *path) {
    char *dir = eft_is_dir(path) ? eft_strdup(path) : NULL;
    if (!dir) {
        const char *slash = strrchr(path, '/');
        dir = slash ? eft_strndup(path, (size_t)(slash - path)) : eft_strdup(".");
    }
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json",
                                        "chat_template.jinja"};
    int rc = 0;
    for (size_t i = 0; i < EFT_ARRAY_LEN(names) && !rc; i++) {
        char *p = i == 0 && !eft_is_dir(path) ? eft_strdup(path) : eft_path_join(dir, names[i]);
        h_tag(h, names[i]);
        if (eft_is_file(p)) rc = h_file(h, p);
        eft_free(p);
    }
    eft_free(dir);
    return rc;
}

int ds_cache_key(const eft_config *c, ds_source *const *srcs, int n, char hex[33]) {
    eft_hash h;
    eft_hash_begin(&h);
    h_tag(&h, "eft prepared data");
    eft_hash_u64(&h, DS_DATA_VERSION);
    h_int(&h, "sequence_len", &c->sequence_len),
        h_int(&h, "eval_sequence_len", &c->eval_sequence_len);
    h_str(&h, "excess_length_strategy", &c->excess_length_strategy);
    h_int(&h, "min_sample_len", &c->min_sample_len);
    h_bool(&h, "train_on_inputs", &c->train_on_inputs);
    h_int(&h, "seed", &c->seed);
    h_float(&h, "val_set_size", &c->val_set_size);
    h_bool(&h, "shuffle_merged_datasets", &c->shuffle_merged_datasets);
    h_bool(&h, "shuffle_before_merging_datasets", &c->shuffle_before_merging_datasets);
    h_bool(&h, "curriculum_sampling", &c->curriculum_sampling);
    h_bool(&h, "dataset_exact_deduplication", &c->dataset_exact_deduplication);
    h_str(&h, "chat_template", &c->chat_template);
    h_map(&h, "chat_template_kwargs", &c->chat_template_kwargs);
    h_list(&h, "eot_tokens", &c->eot_tokens);
    h_map(&h, "special_tokens", &c->special_tokens);
    int rc = h_tokenizer(&h, c->tokenizer_path ? c->tokenizer_path : "");
    for (int i = 0; i < n && !rc; i++) {
        h_tag(&h, "dataset");
        eft_hash_str(&h, srcs[i]->what);
        h_dataset(&h, srcs[i]->d);
        for (int f = 0; f < srcs[i]->n_files && !rc; f++) rc = h_file(&h, srcs[i]->files[f].path);
    }
    eft_hash_end_hex(&h, hex);
    return rc;
}

/* ---- the file ---- */

#define MAGIC "EFTDATA\1"
#define ALIGN 64

typedef struct header {
    char magic[8];
    uint32_t version, flags; /* flags: bit 0 train has labels, bit 1 eval has labels */
    char key[32];
    uint64_t payload, stats_len;
    char payload_hash[32];
    int64_t n[2], tokens[2];
    char pad[128 - 8 - 8 - 32 - 16 - 32 - 32];
} header;
_Static_assert(sizeof(header) == 128, "the cache header is 128 bytes");

static uint64_t up(uint64_t x) {
    return (x + ALIGN - 1) / ALIGN * ALIGN;
}

/* Byte sizes of one set's arrays, in file order. */
static void set_sizes(int64_t n, int64_t tokens, bool labels, uint64_t sz[4]) {
    sz[0] = (uint64_t)(n + 1) * 8;
    sz[1] = (uint64_t)tokens * 4;
    sz[2] = (uint64_t)(tokens + 7) / 8;
    sz[3] = labels ? (uint64_t)tokens * 4 : 0;
}

static char *stats_json(const ds_prepared *p) {
    eft_buf b = {0};
    eft_buf_putc(&b, '[');
    for (int i = 0; i < p->n_stats; i++) {
        const ds_stats *s = &p->stats[i];
        eft_buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
        eft_buf_json_str(&b, s->name);
        eft_buf_printf(&b,
                       ",\"test\":%d,\"max_len\":%lld,\"rows\":%lld,\"skipped\":[%lld],\"made\":%"
                       "lld,\"too_short\":"
                       "%lld,\"too_long\":%lld,\"truncated\":%lld,\"untrained\":%lld,\"samples\":"
                       "%lld,\"tokens\":%lld,\"trained\":%lld}",
                       s->test, (long long)s->max_len, (long long)s->rows,
                       (long long)s->skipped[DS_SKIP_EMPTY_TEXT], (long long)s->made,
                       (long long)s->too_short, (long long)s->too_long, (long long)s->truncated,
                       (long long)s->untrained, (long long)s->samples, (long long)s->tokens,
                       (long long)s->trained);
    }
    eft_buf_putc(&b, ']');
    return eft_buf_take(&b);
}

static int read_stats(const char *json, size_t n, ds_prepared *p) {
    cJSON *a = eft_json_parse(json, n, "cache statistics");
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return -1;
    }
    p->n_stats = cJSON_GetArraySize(a);
    p->stats = eft_calloc((size_t)EFT_MAX(p->n_stats, 1), sizeof *p->stats);
    int i = 0;
    for (const cJSON *o = a->child; o; o = o->next, i++) {
        ds_stats *s = &p->stats[i];
        const cJSON *name = cJSON_GetObjectItem(o, "name");
        s->name = eft_strdup(cJSON_IsString(name) ? name->valuestring : "?");
#define GET(f) s->f = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(o, #f))
        GET(rows), GET(max_len), GET(made), GET(too_short), GET(too_long), GET(truncated),
            GET(untrained);
        GET(samples), GET(tokens), GET(trained);
#undef GET
        s->test = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "test")) != 0;
        s->skipped[DS_SKIP_EMPTY_TEXT] =
            (int64_t)cJSON_GetNumberValue(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "skipped"), 0));
    }
    cJSON_Delete(a);
    return 0;
}

static void view_set(ds_samples *s, const unsigned char *base, uint64_t *at, int64_t n,
                     int64_t tokens, bool labels) {
    uint64_t sz[4];
    set_sizes(n, tokens, labels, sz);
    ds_samples_init(s);
    s->owned = false;
    s->n = n, s->n_tokens = tokens;
    s->off = (int64_t *)(uintptr_t)(base + *at), *at = up(*at + sz[0]);
    s->ids = (int32_t *)(uintptr_t)(base + *at), *at = up(*at + sz[1]);
    s->trained = (uint8_t *)(uintptr_t)(base + *at), *at = up(*at + sz[2]);
    s->labels = labels ? (int32_t *)(uintptr_t)(base + *at) : NULL;
    *at = up(*at + sz[3]);
}

static bool offsets_ok(const ds_samples *s) {
    if (s->off[0] != 0 || s->off[s->n] != s->n_tokens) return false;
    for (int64_t i = 0; i < s->n; i++)
        if (s->off[i] > s->off[i + 1]) return false;
    return true;
}

int ds_cache_load(const char *path, const char *key, ds_prepared *p) {
    if (!eft_is_file(path)) return 0;
    eft_mapped m;
    if (eft_map_file(&m, path)) {
        eft_warn("prepared data %s cannot be read (%s); preparing the data again.", path,
                 eft_err_msg());
        eft_err_clear();
        return 0;
    }
    const char *why = NULL;
    header h;
    if (m.size < sizeof h) why = "it is shorter than its header";
    if (!why) {
        memcpy(&h, m.data, sizeof h);
        if (memcmp(h.magic, MAGIC, 8) || h.version != DS_DATA_VERSION)
            why = "it is not an eft prepared-data file of this version";
        else if (memcmp(h.key, key, 32))
            why = "its key does not match its name";
        else if (h.payload != m.size - sizeof h)
            why = "its size is wrong (a truncated write?)";
    }
    if (!why) {
        uint64_t need = sizeof h;
        for (int k = 0; k < 2; k++) {
            uint64_t sz[4];
            if (h.n[k] < 0 || h.tokens[k] < 0 || (uint64_t)h.n[k] > m.size ||
                (uint64_t)h.tokens[k] > m.size) {
                why = "its counts are impossible";
                break;
            }
            set_sizes(h.n[k], h.tokens[k], (h.flags >> k) & 1, sz);
            for (int j = 0; j < 4; j++) need = up(need + sz[j]);
        }
        if (!why && need + h.stats_len != m.size) why = "its sections do not add up to its size";
    }
    if (!why) {
        eft_hash hh;
        char hex[33];
        eft_hash_begin(&hh);
        eft_hash_bytes(&hh, m.data + sizeof h, m.size - sizeof h);
        eft_hash_end_hex(&hh, hex);
        if (memcmp(hex, h.payload_hash, 32))
            why = "its checksum does not match (the file is corrupt)";
    }
    if (why) {
        eft_warn("prepared data %s is unusable: %s; preparing the data again.", path, why);
        eft_unmap(&m);
        return 0;
    }
    uint64_t at = sizeof h;
    view_set(&p->train, m.data, &at, h.n[0], h.tokens[0], h.flags & 1);
    view_set(&p->eval, m.data, &at, h.n[1], h.tokens[1], (h.flags >> 1) & 1);
    if (!offsets_ok(&p->train) || !offsets_ok(&p->eval) ||
        read_stats((const char *)m.data + at, h.stats_len, p)) {
        eft_warn("prepared data %s has inconsistent contents; preparing the data again.", path);
        eft_err_clear();
        ds_samples_init(&p->train), ds_samples_init(&p->eval);
        eft_unmap(&m);
        return 0;
    }
    p->map = m;
    p->from_cache = true;
    return 1;
}

static int put(eft_atomic *a, eft_hash *h, uint64_t *at, const void *data, uint64_t n) {
    static const unsigned char zeros[ALIGN];
    if (n && fwrite(data, 1, n, a->f) != n) return -1;
    eft_hash_bytes(h, data, n);
    uint64_t pad = up(*at + n) - (*at + n);
    if (pad && fwrite(zeros, 1, pad, a->f) != pad) return -1;
    eft_hash_bytes(h, zeros, pad);
    *at += n + pad;
    return 0;
}

int ds_cache_save(const char *path, const char *key, const ds_prepared *p) {
    const char *slash = strrchr(path, '/');
    if (slash) {
        char *dir = eft_strndup(path, (size_t)(slash - path));
        int rc = eft_mkdirs(dir);
        eft_free(dir);
        if (rc) return -1;
    }
    header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, MAGIC, 8);
    h.version = DS_DATA_VERSION;
    memcpy(h.key, key, 32);
    const ds_samples *sets[2] = {&p->train, &p->eval};
    eft_atomic a;
    if (eft_atomic_open(&a, path)) return -1;
    int rc = fwrite(&h, sizeof h, 1, a.f) == 1 ? 0 : -1;
    eft_hash hh;
    eft_hash_begin(&hh);
    uint64_t at = sizeof h;
    for (int k = 0; k < 2 && !rc; k++) {
        const ds_samples *s = sets[k];
        static const int64_t zero = 0;
        h.n[k] = s->n, h.tokens[k] = s->n_tokens;
        if (s->labels) h.flags |= 1u << k;
        uint64_t sz[4];
        set_sizes(s->n, s->n_tokens, s->labels != NULL, sz);
        rc = put(&a, &hh, &at, s->off ? (const void *)s->off : &zero, sz[0]) ||
             put(&a, &hh, &at, s->ids, sz[1]) || put(&a, &hh, &at, s->trained, sz[2]) ||
             put(&a, &hh, &at, s->labels, sz[3]);
    }
    char *stats = stats_json(p);
    h.stats_len = strlen(stats);
    if (!rc && fwrite(stats, 1, h.stats_len, a.f) != h.stats_len) rc = -1;
    eft_hash_bytes(&hh, stats, h.stats_len);
    eft_free(stats);
    char hex[33];
    eft_hash_end_hex(&hh, hex);
    memcpy(h.payload_hash, hex, 32);
    h.payload = at + h.stats_len - sizeof h;
    if (!rc && (fseek(a.f, 0, SEEK_SET) || fwrite(&h, sizeof h, 1, a.f) != 1)) rc = -1;
    if (rc) {
        eft_atomic_abort(&a);
        return eft_fail_errno(path, "Check the disk has room and dataset_prepared_path is "
                                    "writable.");
    }
    return eft_atomic_commit(&a);
}
