/* gemma4_tokenizer.c: builds the Gemma-4-style test tokenizer (see gemma4_tokenizer.h). */
#include "support/gemma4_tokenizer.h"

#include "support/test.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FOLDER "test-fixtures/gemma4-tokenizer-v1"

static const struct {
    int id;
    const char *name;
} renames[] = {
    {46, "<|tool>"},       {47, "<tool|>"},          {48, "<|tool_call>"},
    {49, "<tool_call|>"},  {50, "<|tool_response>"}, {51, "<tool_response|>"},
    {52, "<|\"|>"},        {98, "<|think|>"},        {100, "<|channel>"},
    {101, "<channel|>"},   {105, "<|turn>"},         {106, "<turn|>"},
    {255999, "<|image>"},  {256000, "<|audio>"},     {258880, "<|image|>"},
    {258881, "<|audio|>"}, {258882, "<image|>"},     {258883, "<audio|>"},
    {258884, "<|video|>"},
};
#define DROPPED_ID 262144 /* <image_soft_token>: Gemma 4 has exactly 262144 ids */

static const char *new_name(int id) {
    for (size_t i = 0; i < EFT_ARRAY_LEN(renames); i++)
        if (renames[i].id == id) return renames[i].name;
    return NULL;
}

static void set_string(cJSON *obj, const char *key, const char *value) {
    cJSON_ReplaceItemInObjectCaseSensitive(obj, key, cJSON_CreateString(value));
}

/* Renames the vocabulary key old -> name (the piece keeps its id). */
static void rename_piece(cJSON *vocab, const char *old, const char *name) {
    cJSON *item = cJSON_DetachItemFromObjectCaseSensitive(vocab, old);
    assert_non_null(item);
    cJSON_AddItemToObject(vocab, name, item);
}

static void derive_tokenizer(cJSON *root) {
    cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    cJSON *vocab =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "vocab");
    assert_non_null(added);
    assert_non_null(vocab);
    for (cJSON *a = added->child, *next; a; a = next) {
        next = a->next;
        int id = cJSON_GetObjectItemCaseSensitive(a, "id")->valueint;
        const char *name = new_name(id);
        if (id == DROPPED_ID) {
            cJSON_Delete(cJSON_DetachItemViaPointer(added, a));
        } else if (name) {
            rename_piece(vocab, cJSON_GetObjectItemCaseSensitive(a, "content")->valuestring, name);
            set_string(a, "content", name);
            cJSON_ReplaceItemInObjectCaseSensitive(a, "special", cJSON_CreateTrue());
        }
    }
}

static void derive_config(cJSON *config) {
    cJSON *dec = cJSON_GetObjectItemCaseSensitive(config, "added_tokens_decoder");
    for (cJSON *e = dec ? dec->child : NULL, *next; e; e = next) {
        next = e->next;
        int id = atoi(e->string);
        const char *name = new_name(id);
        if (id == DROPPED_ID) {
            cJSON_Delete(cJSON_DetachItemViaPointer(dec, e));
        } else if (name) {
            set_string(e, "content", name);
            cJSON_ReplaceItemInObjectCaseSensitive(e, "special", cJSON_CreateTrue());
        }
    }
    set_string(config, "eos_token", "<turn|>");
    set_string(config, "boi_token", "<|image>");
    set_string(config, "eoi_token", "<image|>");
    set_string(config, "image_token", "<|image|>");
    cJSON_DeleteItemFromObjectCaseSensitive(config, "extra_special_tokens");
    cJSON_DeleteItemFromObjectCaseSensitive(config, "chat_template");
}

static void write_json(const char *dir, const char *name, cJSON *root) {
    char *path = eft_path_join(dir, name), *text = cJSON_PrintUnformatted(root);
    assert_non_null(text);
    assert_int_equal(eft_write_file_atomic(path, text, strlen(text)), 0);
    free(text);
    eft_free(path);
}

char *test_gemma4_tokenizer_path(void) {
    char *src = test_shared_or_skip("data/gemma3-tokenizer");
    char *dir = eft_strdup(FOLDER), *done = eft_path_join(dir, "tokenizer.json");
    if (!eft_is_file(done)) {
        assert_int_equal(eft_mkdirs(dir), 0);
        char *tj = eft_path_join(src, "tokenizer.json"),
             *cj = eft_path_join(src, "tokenizer_config.json");
        cJSON *root = eft_json_parse_file(tj), *config = eft_json_parse_file(cj);
        assert_non_null(root);
        assert_non_null(config);
        derive_config(config);
        write_json(dir, "tokenizer_config.json", config);
        char *tmpl_src = eft_path_join(EFT_SHARED_DIR, "data/chat-templates/gemma4.jinja");
        char *tmpl_dst = eft_path_join(dir, "chat_template.jinja"), *tmpl = NULL;
        size_t n;
        if (eft_is_file(tmpl_src)) {
            assert_non_null(tmpl = eft_read_file(tmpl_src, &n));
            assert_int_equal(eft_write_file_atomic(tmpl_dst, tmpl, n), 0);
        }
        derive_tokenizer(root);
        write_json(dir, "tokenizer.json", root); /* last: its presence marks the folder done */
        cJSON_Delete(root);
        cJSON_Delete(config);
        eft_free(tmpl);
        eft_free(tmpl_dst);
        eft_free(tmpl_src);
        eft_free(tj);
        eft_free(cj);
    }
    eft_free(done);
    eft_free(src);
    return dir;
}
