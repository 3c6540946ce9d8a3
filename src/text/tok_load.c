/* tok_load.c: reading tokenizer.json (and tokenizer_config.json beside it) into a tok_tokenizer,
 * freeing it, and the small accessors.
 *
 * The JSON is parsed once with cJSON and read section by section (tok_model.c, tok_pipeline.c,
 * tok_added.c) into flat tables; the cJSON tree is dropped before returning. Strings live in a
 * pool of large blocks, so the 262144 pieces of a Gemma vocabulary cost no malloc each.
 */
#include "text/tok_internal.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/json.h"

#include <stdatomic.h>
#include <string.h>

struct tok_pool_block {
    struct tok_pool_block *next;
    size_t used, cap;
    char data[];
};

const char *tok_pool_add(tok_tokenizer *t, const char *s, size_t n) {
    struct tok_pool_block *b = t->pool;
    if (!b || b->cap - b->used < n + 1) {
        size_t cap = EFT_MAX(n + 1, (size_t)1 << 20);
        b = eft_malloc(sizeof *b + cap);
        b->next = t->pool, b->used = 0, b->cap = cap;
        t->pool = b;
    }
    char *p = b->data + b->used;
    memcpy(p, s, n);
    p[n] = 0;
    b->used += n + 1;
    return p;
}

char *tok_quote(const char *s, size_t n) {
    size_t cut = n;
    if (cut > 40) { /* cut at a character boundary */
        cut = 40;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
    }
    char *part = eft_strndup(s, cut);
    eft_buf b = {0};
    eft_buf_json_str(&b, part);
    if (cut < n) eft_buf_puts(&b, "...");
    eft_free(part);
    return eft_buf_take(&b);
}

void tok_vocab_finish(tok_tokenizer *t) {
    t->vocab_size = t->n_model;
    for (int32_t i = 0; i < t->n_added; i++)
        t->vocab_size = EFT_MAX(t->vocab_size, t->added[i].id + 1);
    t->piece = eft_calloc((size_t)t->vocab_size, sizeof *t->piece);
    t->piece_len = eft_calloc((size_t)t->vocab_size, sizeof *t->piece_len);
    t->is_special = eft_calloc((size_t)t->vocab_size, 1);
    memcpy(t->piece, t->model_piece, (size_t)t->n_model * sizeof *t->piece);
    memcpy(t->piece_len, t->model_len, (size_t)t->n_model * sizeof *t->piece_len);
    for (int32_t i = 0; i < t->n_added; i++) {
        const tok_added *a = &t->added[i];
        t->piece[a->id] = a->content;
        t->piece_len[a->id] = a->len;
        t->is_special[a->id] = a->special;
    }
}

/* A token named in tokenizer_config.json: a string or {"content": "..."}. */
static int config_token(const tok_tokenizer *t, const cJSON *config, const char *config_name,
                        const char *key, const char *fallback, int32_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!v || cJSON_IsNull(v)) {
        *out = tok_id(t, fallback);
        return 0;
    }
    if (!cJSON_IsString(v))
        return eft_fail("%s: \"%s\" must be a token string. Fix the file.", config_name, key);
    *out = tok_id(t, v->valuestring);
    if (*out < 0)
        return eft_fail("%s: \"%s\" is \"%s\", which is not a token of %s. Fix one of the two "
                        "files.",
                        config_name, key, v->valuestring, t->name);
    return 0;
}

static int load_config(tok_tokenizer *t, const char *config, size_t n, const char *config_name) {
    cJSON *root = NULL;
    if (config) {
        root = eft_json_parse(config, n, config_name);
        if (!root) return -1;
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            return eft_fail("%s: expected a JSON object. Fix the file.", config_name);
        }
    }
    int rc = config_token(t, root, config_name, "eos_token", "<eos>", &t->eos_id) ||
             config_token(t, root, config_name, "pad_token", "<pad>", &t->pad_id);
    cJSON_Delete(root);
    return rc ? -1 : 0;
}

static int load_root(tok_tokenizer *t, const cJSON *root) {
    if (!cJSON_IsObject(root))
        return eft_fail("%s: expected a JSON object (a tokenizer.json). Check the file.", t->name);
    for (const char *const *k = (const char *const[]){"truncation", "padding", NULL}; *k; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, *k);
        if (v && !cJSON_IsNull(v))
            eft_warn_once("%s: \"%s\" is set and ignored: eft cuts and pads sequences itself "
                          "(sequence_len).",
                          t->name, *k);
    }
    /* The model first (added tokens take its ids), then the normalizer (normalized added
     * tokens are matched in normalized form), then the added tokens. */
    if (tok_model_load(t, cJSON_GetObjectItemCaseSensitive(root, "model")) ||
        tok_pipeline_load(t, root) ||
        tok_added_load(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")))
        return -1;
    tok_vocab_finish(t);
    for (int i = 0; i < t->n_post_pre + t->n_post_post; i++) {
        int32_t id = i < t->n_post_pre ? t->post_pre[i] : t->post_post[i - t->n_post_pre];
        if (id >= t->vocab_size)
            return eft_fail("%s: post_processor: token id %d is outside the vocabulary (%d "
                            "ids). Fix the file.",
                            t->name, id, t->vocab_size);
    }
    t->bos_id = t->n_post_pre ? t->post_pre[0] : -1;
    return 0;
}

static tok_tokenizer *load(const char *json, size_t n, const char *name, const char *config,
                           size_t config_n, const char *config_name) {
    static _Atomic uint64_t next_serial = 1;
    tok_tokenizer *t = eft_calloc(1, sizeof *t);
    t->name = eft_strdup(name);
    t->serial = atomic_fetch_add(&next_serial, 1);
    tok_scratch_init(t);
    cJSON *root = eft_json_parse(json, n, name);
    int rc = !root || load_root(t, root) || load_config(t, config, config_n, config_name);
    cJSON_Delete(root);
    if (!rc) return t;
    tok_free(t);
    return NULL;
}

tok_tokenizer *tok_load_mem(const char *json, size_t n, const char *config, size_t config_n,
                            const char *name) {
    char *config_name = eft_asprintf("%s's tokenizer_config.json", name);
    tok_tokenizer *t = load(json, n, name, config, config_n, config_name);
    eft_free(config_name);
    return t;
}

tok_tokenizer *tok_load(const char *path) {
    char *file = eft_is_dir(path) ? eft_path_join(path, "tokenizer.json") : eft_strdup(path);
    const char *slash = strrchr(file, '/');
    char *dir = slash ? eft_strndup(file, (size_t)(slash - file)) : eft_strdup(".");
    char *config_path = eft_path_join(dir, "tokenizer_config.json");
    size_t n = 0, config_n = 0;
    char *json = eft_read_file(file, &n), *config = NULL;
    tok_tokenizer *t = NULL;
    if (json && (!eft_is_file(config_path) || (config = eft_read_file(config_path, &config_n))))
        t = load(json, n, file, config, config_n, config_path);
    eft_free(json);
    eft_free(config);
    eft_free(config_path);
    eft_free(dir);
    eft_free(file);
    return t;
}

void tok_free(tok_tokenizer *t) {
    if (!t) return;
    tok_scratch_free_all(t);
    tok_model_free(t);
    tok_added_free(t);
    tok_pipeline_free(t);
    eft_free(t->piece);
    eft_free(t->piece_len);
    eft_free(t->is_special);
    while (t->pool) {
        struct tok_pool_block *b = t->pool;
        t->pool = b->next;
        eft_free(b);
    }
    eft_free(t->name);
    eft_free(t);
}

int tok_vocab_size(const tok_tokenizer *t) {
    return t->vocab_size;
}

int32_t tok_id(const tok_tokenizer *t, const char *piece) {
    size_t n = strlen(piece);
    int32_t a = tok_strmap_get(&t->added_map, piece, n);
    if (a >= 0) return t->added[a].id;
    return tok_strmap_get(&t->model_map, piece, n);
}

const char *tok_piece(const tok_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->vocab_size ? t->piece[id] : NULL;
}

bool tok_is_special(const tok_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->vocab_size && t->is_special[id];
}

int32_t tok_bos_id(const tok_tokenizer *t) {
    return t->bos_id;
}
int32_t tok_eos_id(const tok_tokenizer *t) {
    return t->eos_id;
}
int32_t tok_pad_id(const tok_tokenizer *t) {
    return t->pad_id;
}
int32_t tok_unk_id(const tok_tokenizer *t) {
    return t->unk_id;
}
