/* chat_detect.c: template names, and recognising a checkpoint's own Jinja template as one that
 * eft renders (chat_template: tokenizer_default).
 *
 * eft has no Jinja interpreter, so a checkpoint's template is accepted only when its source is one
 * whose rendering eft reproduces: known sources are listed by the XXH3-128 hash of their text after
 * CRLF -> LF and trimming whitespace at both ends. A near miss (another version of the Gemma 4
 * template, say) is refused with an error that says what it looks like; eft never guesses.
 */
#include "text/chat_internal.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/hash.h"
#include "io/json.h"

#include <string.h>

static const struct {
    const char *name;
    chat_template_kind kind;
} names[] = {
    {"gemma4", CHAT_GEMMA4},
    {"gemma4_unified", CHAT_GEMMA4}, /* Axolotl ships the same file under both names */
    {"gemma3", CHAT_GEMMA3},
    {"chatml", CHAT_CHATML},
};

static const struct {
    const char *hash, *what;
    chat_template_kind kind;
} known[] = {
    {"2129f84b3f69327e03db3b8d26a1af66",
     "Axolotl's gemma4.jinja and gemma4_unified.jinja (= "
     "../shared/data/chat-templates/gemma4.jinja)",
     CHAT_GEMMA4},
    {"6c84c2da794fd4c1d9c620dcaf86f38d", "Google's Gemma 3 -it tokenizer_config.json template",
     CHAT_GEMMA3},
    {"86b5a36f023d1b14a31f39eb53a7a523", "Axolotl 0.19's gemma3.jinja", CHAT_GEMMA3},
    {"a344e8c84fb0282dda206a9e46a4ac01", "Axolotl 0.19's chatml.jinja", CHAT_CHATML},
};

int chat_template_by_name(const char *name, chat_template_kind *out) {
    for (size_t i = 0; i < EFT_ARRAY_LEN(names); i++)
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].kind;
            return 0;
        }
    return eft_fail("chat_template: \"%s\" is not a template eft renders; eft has gemma4 (or "
                    "gemma4_unified, the same), gemma3 and chatml, or tokenizer_default for a "
                    "checkpoint whose own template is one of them.",
                    name);
}

const char *chat_template_name(chat_template_kind k) {
    switch (k) {
    case CHAT_GEMMA4:
        return "gemma4";
    case CHAT_GEMMA3:
        return "gemma3";
    case CHAT_CHATML:
        return "chatml";
    }
    return "?";
}

static bool space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* XXH3-128 of the source with CRLF -> LF, trimmed of ASCII whitespace at both ends. */
static void fingerprint(const char *src, char hex[33]) {
    size_t b = 0, e = strlen(src);
    while (b < e && space(src[b])) b++;
    while (e > b && space(src[e - 1])) e--;
    eft_hash h;
    eft_hash_begin(&h);
    for (size_t i = b; i < e;) {
        size_t j = i;
        while (j < e && !(src[j] == '\r' && j + 1 < e && src[j + 1] == '\n')) j++;
        eft_hash_bytes(&h, src + i, j - i);
        i = j < e ? j + 1 : j; /* skip the \r; the \n starts the next run */
    }
    eft_hash_end_hex(&h, hex);
}

/* What an unknown template looks like, for the error. */
static const char *resembles(const char *src) {
    if (strstr(src, "<|turn>")) return "a Gemma 4 template, but not the version eft renders";
    if (strstr(src, "<start_of_turn>")) return "a Gemma 2/3 template, but not one eft renders";
    if (strstr(src, "<|im_start|>")) return "a ChatML template, but not the one eft renders";
    return "not a template eft renders";
}

int chat_template_detect(const char *jinja_source, const char *where, chat_template_kind *out) {
    char hex[33];
    fingerprint(jinja_source, hex);
    for (size_t i = 0; i < EFT_ARRAY_LEN(known); i++)
        if (strcmp(hex, known[i].hash) == 0) {
            *out = known[i].kind;
            return 0;
        }
    return eft_fail("%s: the checkpoint's chat template (xxh3 %s) is %s, so eft cannot render it "
                    "exactly. Set chat_template to gemma4, gemma3 or chatml (after checking that "
                    "it renders your data as this template would).",
                    where, hex, resembles(jinja_source));
}

/* tokenizer_config.json's "chat_template": a string, or [{name, template}] with a "default". */
static const char *config_template(const cJSON *cfg) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsString(t)) return t->valuestring;
    if (!cJSON_IsArray(t)) return NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, t) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name"),
                    *tmpl = cJSON_GetObjectItemCaseSensitive(e, "template");
        if (cJSON_IsString(name) && strcmp(name->valuestring, "default") == 0 &&
            cJSON_IsString(tmpl))
            return tmpl->valuestring;
    }
    return NULL;
}

static int no_template(const char *dir) {
    return eft_fail("%s: the checkpoint has no chat template (no chat_template.jinja, no "
                    "\"chat_template\" in tokenizer_config.json), so chat_template: "
                    "tokenizer_default has nothing to use. Set chat_template to gemma4, gemma3 or "
                    "chatml.",
                    dir);
}

int chat_template_from_checkpoint(const char *dir, chat_template_kind *out) {
    char *path = eft_path_join(dir, "chat_template.jinja"), *src = NULL;
    cJSON *cfg = NULL;
    int rc = -1;
    if (eft_is_file(path)) {
        if ((src = eft_read_file(path, NULL))) rc = chat_template_detect(src, path, out);
    } else {
        eft_free(path);
        path = eft_path_join(dir, "tokenizer_config.json");
        if (!eft_is_file(path)) {
            rc = no_template(dir);
        } else if ((cfg = eft_json_parse_file(path))) {
            const char *tmpl = config_template(cfg);
            rc = tmpl ? chat_template_detect(tmpl, path, out) : no_template(dir);
        }
    }
    cJSON_Delete(cfg);
    eft_free(src);
    eft_free(path);
    return rc;
}
