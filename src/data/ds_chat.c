/* ds_chat.c: `type: chat_template` rows: from a row's turns to chat_msg arrays for the template
 * engine (text/chat.h), as Axolotl's chat_template strategy reads them.
 *
 *   - the turns are the list under field_messages (a JSON string holding the list is parsed, as
 *     Axolotl parses it);
 *   - each turn's role and content are read under the names message_property_mappings gives
 *     (older spelling: message_field_role / message_field_content), default "role", "content";
 *     content may be a list of parts ({"text"|"content"|"value": ...}) that are joined;
 *   - role names go through `roles` (target: [sources]); without it, Axolotl's defaults: human
 *     and user -> user, gpt and assistant -> assistant, system, tool. A role that is then none of
 *     system, developer, user, assistant, tool is an error (Axolotl would hand the odd name to
 *     the template); roles_to_train go through the same map;
 *   - a "system" column becomes a first system turn unless the first turn is one;
 *   - message_field_training names a per-turn boolean that overrides roles_to_train.
 * The template is the entry's chat_template, else the top-level one, else tokenizer_default: the
 * checkpoint's chat_template.jinja or tokenizer_config.json "chat_template", which must be one
 * the engine renders (tokenizer_default_fallback_<name> uses <name> when the checkpoint has
 * none). eot_tokens (default: the tokenizer's eos token) must each be one token.
 *
 * Not yet (refused, naming the row or the key): tools, reasoning_content, per-part or per-span
 * training (content parts with train/weight, message_field_training_detail), and
 * chat_template_kwargs other than enable_thinking: false.
 */
#include "data/ds_format.h"

#include "base/err.h"
#include "base/fs.h"
#include "io/json.h"
#include "text/chat.h"

#include <string.h>

struct ds_chat {
    chat_template_kind tmpl;
    chat_opts opts;
    const char *role_key, *content_key, *training_key, *thinking_key, *tools_key;
    const char *messages_key;
    /* roles: source name -> normalised role */
    int n_roles;
    const char **role_from, **role_to;
    const char **train_roles; /* [n] normalised roles_to_train (owned array) */
    int32_t *eot;             /* [n_eot] */
};

static const char *const known_roles[] = {"system", "developer", "user", "assistant", "tool"};

/* The normalised (static) spelling of a known role, or NULL. */
static const char *known_role(const char *r) {
    for (size_t i = 0; i < EFT_ARRAY_LEN(known_roles); i++)
        if (!strcmp(r, known_roles[i])) return known_roles[i];
    return NULL;
}

static const char *map_role(const ds_chat *ch, const char *r) {
    for (int i = 0; i < ch->n_roles; i++)
        if (!strcmp(ch->role_from[i], r)) return ch->role_to[i];
    return r;
}

static void add_role(ds_chat *ch, const char *from, const char *to) {
    ch->role_from = eft_realloc(ch->role_from, (size_t)(ch->n_roles + 1) * sizeof(char *));
    ch->role_to = eft_realloc(ch->role_to, (size_t)(ch->n_roles + 1) * sizeof(char *));
    ch->role_from[ch->n_roles] = from;
    ch->role_to[ch->n_roles++] = to;
}

static int fail_key(cfg_pos at, const char *what, const char *key, const char *msg) {
    char *where = cfg_pos_str(at);
    eft_fail("%s: %s: %s: %s", where, what, key, msg);
    eft_free(where);
    return -1;
}

/* The template: by name, or the checkpoint's own (tokenizer_default[_fallback_<name>]). */
static int resolve_template(const eft_config *c, const cfg_dataset *d, const char *what,
                            chat_template_kind *out) {
    const cfg_str *key = d->chat_template.set ? &d->chat_template : &c->chat_template;
    const char *name = key->v ? key->v : "tokenizer_default";
    const char *fallback = NULL;
    static const char prefix[] = "tokenizer_default_fallback_";
    if (!strncmp(name, prefix, sizeof prefix - 1)) fallback = name + sizeof prefix - 1;
    if (strcmp(name, "tokenizer_default") && !fallback) {
        if (chat_template_by_name(name, out) == 0) return 0;
        char *at = cfg_pos_str(key->at);
        eft_err_context("%s: %s: chat_template", at, what);
        eft_free(at);
        return -1;
    }
    const char *tp = c->tokenizer_path ? c->tokenizer_path : ".";
    char *dir = eft_is_dir(tp) ? eft_strdup(tp) : NULL;
    if (!dir) {
        const char *slash = strrchr(tp, '/');
        dir = slash ? eft_strndup(tp, (size_t)(slash - tp)) : eft_strdup(".");
    }
    bool has = false;
    char *jinja = eft_path_join(dir, "chat_template.jinja");
    has = eft_is_file(jinja);
    eft_free(jinja);
    if (!has) {
        char *tc = eft_path_join(dir, "tokenizer_config.json");
        if (eft_is_file(tc)) {
            cJSON *o = eft_json_parse_file(tc);
            has = o && cJSON_GetObjectItemCaseSensitive(o, "chat_template") &&
                  !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "chat_template"));
            cJSON_Delete(o);
            eft_err_clear();
        }
        eft_free(tc);
    }
    int rc;
    if (has)
        rc = chat_template_from_checkpoint(dir, out);
    else if (fallback)
        rc = chat_template_by_name(fallback, out);
    else
        rc = eft_fail("%s: the tokenizer has no chat template (no chat_template.jinja, no "
                      "\"chat_template\" in tokenizer_config.json), and %s uses "
                      "tokenizer_default. Set chat_template: gemma4 in the config.",
                      dir, what);
    eft_free(dir);
    return rc;
}

static int eos_mode(const cfg_str *s, const char *what, const char *key, chat_eos_mode *out) {
    if (!s->v) return 0;
    if (chat_eos_mode_by_name(s->v, out) == 0) return 0;
    char *at = cfg_pos_str(s->at);
    eft_err_context("%s: %s: %s", at, what, key);
    eft_free(at);
    return -1;
}

int ds_chat_init(ds_format *f, const eft_config *c, const cfg_dataset *d, const char *what) {
    ds_chat *ch = eft_calloc(1, sizeof *ch);
    f->chat = ch;
    if (d->message_field_training_detail.set)
        return fail_key(d->message_field_training_detail.at, what, "message_field_training_detail",
                        "per-span training is not supported yet. Remove it, or split the "
                        "turns.");
    /* The engine takes one template variable, enable_thinking: refuse the others, which
     * would change the text, rather than ignore them. */
    const cfg_map *kw = &c->chat_template_kwargs;
    for (int i = 0; i < kw->n; i++) {
        const cfg_map_item *it = &kw->items[i];
        if (strcmp(it->key, "enable_thinking"))
            return fail_key(it->key_at, what, "chat_template_kwargs",
                            "eft's chat templates take one variable, enable_thinking; remove "
                            "the others.");
    }
    bool think = false;
    if (cfg_map_bool(kw, "enable_thinking", &think, "chat_template_kwargs")) return -1;
    if (resolve_template(c, d, what, &ch->tmpl)) return -1;
    /* message keys */
    const cfg_map *mp = &d->message_property_mappings;
    ch->role_key = d->message_field_role.v ? d->message_field_role.v : "role";
    ch->content_key = d->message_field_content.v ? d->message_field_content.v : "content";
    if (cfg_map_str(mp, "role", &ch->role_key, "message_property_mappings") ||
        cfg_map_str(mp, "content", &ch->content_key, "message_property_mappings"))
        return -1;
    ch->messages_key = d->field_messages.v ? d->field_messages.v : "messages";
    ch->training_key = d->message_field_training.v;
    ch->thinking_key = d->field_thinking.v ? d->field_thinking.v : "reasoning_content";
    ch->tools_key = d->field_tools.v ? d->field_tools.v : "tools";
    /* roles */
    if (d->roles.set && d->roles.n > 0) {
        for (int i = 0; i < d->roles.n; i++) {
            const cfg_map_item *it = &d->roles.items[i];
            const char *to = known_role(it->key);
            if (!to)
                return fail_key(it->key_at, what, "roles",
                                "a target role must be system, developer, user, assistant or "
                                "tool (roles: {assistant: [gpt, model]}).");
            for (int k = 0; k < it->n; k++) add_role(ch, it->v[k].text, to);
        }
    } else {
        static const char *const def[][2] = {{"human", "user"},          {"user", "user"},
                                             {"assistant", "assistant"}, {"gpt", "assistant"},
                                             {"system", "system"},       {"tool", "tool"}};
        for (size_t i = 0; i < EFT_ARRAY_LEN(def); i++) add_role(ch, def[i][0], def[i][1]);
    }
    /* training options */
    chat_opts *o = &ch->opts;
    *o = chat_opts_default();
    o->enable_thinking = think;
    const cfg_strlist *rt = &d->roles_to_train;
    ch->train_roles = eft_calloc((size_t)(rt->n ? rt->n : 1), sizeof *ch->train_roles);
    for (int i = 0; i < rt->n; i++) {
        const char *r = known_role(map_role(ch, rt->v[i]));
        if (!r) {
            char *msg = eft_asprintf("\"%s\" is not a role (after the roles map): use system, "
                                     "developer, user, assistant or tool.",
                                     rt->v[i]);
            fail_key(rt->v_at[i].file ? rt->v_at[i] : d->at, what, "roles_to_train", msg);
            eft_free(msg);
            return -1;
        }
        ch->train_roles[i] = r;
    }
    o->roles_to_train = ch->train_roles;
    o->n_roles_to_train = rt->n;
    if (eos_mode(&d->train_on_eos, what, "train_on_eos", &o->train_on_eos)) return -1;
    o->train_on_eot = o->train_on_eos;
    if (eos_mode(&d->train_on_eot, what, "train_on_eot", &o->train_on_eot)) return -1;
    o->drop_system_message = d->drop_system_message.v;
    o->train_on_inputs = c->train_on_inputs.v;
    /* eot_tokens, default the tokenizer's eos */
    const cfg_strlist *eot = &c->eot_tokens;
    if (eot->set) {
        ch->eot = eft_calloc((size_t)(eot->n ? eot->n : 1), sizeof *ch->eot);
        if (chat_eot_ids(f->tok, (const char *const *)eot->v, eot->n, ch->eot)) {
            char *at = cfg_pos_str(eot->at);
            eft_err_context("%s", at);
            eft_free(at);
            return -1;
        }
        o->n_eot = eot->n;
    } else if (f->eos >= 0) {
        ch->eot = eft_calloc(1, sizeof *ch->eot);
        ch->eot[0] = f->eos;
        o->n_eot = 1;
    }
    o->eot_ids = ch->eot;
    if (chat_opts_check(f->tok, o)) {
        const cfg_str *k = d->train_on_eot.set ? &d->train_on_eot : &d->train_on_eos;
        char *at = cfg_pos_str(k->set ? k->at : d->at);
        eft_err_context("%s: %s", at, what);
        eft_free(at);
        return -1;
    }
    return 0;
}

void ds_chat_free(ds_chat *ch) {
    eft_free(ch->role_from), eft_free(ch->role_to);
    eft_free(ch->train_roles), eft_free(ch->eot);
    eft_free(ch);
}

/* A turn's content: a string, null (NULL), or parts joined into *joined (owned). */
static int content_of(const ds_at *at, const char *field, const cJSON *v, const char **out,
                      char **joined) {
    *out = NULL, *joined = NULL;
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v)) {
        *out = v->valuestring;
        return 0;
    }
    if (!cJSON_IsArray(v))
        return ds_row_fail(at, field, "expected a string or a list of parts, found %s.",
                           eft_json_kind(v));
    size_t n = 0;
    char *s = eft_strdup("");
    for (const cJSON *p = v->child; p; p = p->next) {
        if (!cJSON_IsObject(p)) continue;
        if (cJSON_GetObjectItemCaseSensitive(p, "train") ||
            cJSON_GetObjectItemCaseSensitive(p, "weight")) {
            eft_free(s);
            return ds_row_fail(at, field,
                               "content parts with train or weight are not "
                               "supported yet; give the turn's content as one "
                               "string.");
        }
        const char *keys[] = {"text", "content", "value"};
        for (int k = 0; k < 3; k++) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, keys[k]);
            if (cJSON_IsString(t) && *t->valuestring) {
                size_t l = strlen(t->valuestring);
                s = eft_realloc(s, n + l + 1);
                memcpy(s + n, t->valuestring, l + 1);
                n += l;
                break;
            }
        }
    }
    *out = *joined = s;
    return 0;
}

int ds_chat_row(const ds_format *f, const cJSON *row, const ds_at *at, ds_samples *out) {
    const ds_chat *ch = f->chat;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(row, ch->tools_key);
    if (tools && !cJSON_IsNull(tools) && !(cJSON_IsArray(tools) && !tools->child))
        return ds_row_fail(at, ch->tools_key,
                           "tool definitions are not supported yet by eft's "
                           "chat templates. Remove them from the data.");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(row, ch->messages_key);
    cJSON *parsed = NULL;
    if (!msgs || cJSON_IsNull(msgs))
        return ds_row_fail(at, ch->messages_key,
                           "missing in this row. Set field_messages to "
                           "the field that holds the turns (FineTome: "
                           "field_messages: conversations).");
    if (cJSON_IsString(msgs)) { /* the turns saved as a JSON string */
        msgs = parsed = cJSON_Parse(msgs->valuestring);
        if (!cJSON_IsArray(parsed)) {
            cJSON_Delete(parsed);
            return ds_row_fail(at, ch->messages_key, "a string that is not a JSON list of turns.");
        }
    }
    if (!cJSON_IsArray(msgs)) {
        cJSON_Delete(parsed);
        return ds_row_fail(at, ch->messages_key, "expected a list of turns, found %s.",
                           eft_json_kind(msgs));
    }
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) {
        cJSON_Delete(parsed);
        return ds_row_fail(at, ch->messages_key, "the list of turns is empty.");
    }
    chat_msg *m = eft_calloc((size_t)n + 1, sizeof *m);
    char **joined = eft_calloc((size_t)n + 1, sizeof *joined);
    int k = 0, rc = 0, i = 0;
    char field[96];
    for (const cJSON *t = msgs->child; t && !rc; t = t->next, i++) {
        snprintf(field, sizeof field, "%s[%d]", ch->messages_key, i);
        if (!cJSON_IsObject(t)) {
            rc = ds_row_fail(at, field, "expected a turn object, found %s.", eft_json_kind(t));
            break;
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(t, ch->role_key);
        if (!cJSON_IsString(role)) {
            rc = ds_row_fail(at, field, "%s: %s; each turn needs a role string%s.", ch->role_key,
                             role ? "not a string" : "missing",
                             strcmp(ch->role_key, "role")
                                 ? ""
                                 : " (ShareGPT data: message_property_mappings: {role: from, "
                                   "content: value})");
            break;
        }
        const char *r = known_role(map_role(ch, role->valuestring));
        if (!r) {
            rc = ds_row_fail(at, field,
                             "unknown role \"%s\". Map it to system, user, assistant "
                             "or tool with roles: in the dataset's config (roles: "
                             "{assistant: [%s]}).",
                             role->valuestring, role->valuestring);
            break;
        }
        const cJSON *think = cJSON_GetObjectItemCaseSensitive(t, ch->thinking_key);
        if (cJSON_IsString(think) && *think->valuestring) {
            rc = ds_row_fail(at, field,
                             "%s: reasoning traces are not rendered by eft yet. "
                             "Remove the field, or put the reasoning in the content.",
                             ch->thinking_key);
            break;
        }
        if (i == 0 && strcmp(r, "system")) { /* a "system" column opens the conversation */
            const cJSON *sys = cJSON_GetObjectItemCaseSensitive(row, "system");
            if (cJSON_IsString(sys)) m[k++] = (chat_msg){"system", sys->valuestring, -1};
        }
        chat_msg *msg = &m[k++];
        msg->role = r;
        msg->train = -1;
        snprintf(field + strlen(field), sizeof field - strlen(field), ".%s", ch->content_key);
        rc = content_of(at, field, cJSON_GetObjectItemCaseSensitive(t, ch->content_key),
                        &msg->content, &joined[i]);
        if (!rc && ch->training_key) {
            const cJSON *tr = cJSON_GetObjectItemCaseSensitive(t, ch->training_key);
            if (cJSON_IsBool(tr))
                msg->train = cJSON_IsTrue(tr);
            else if (tr && !cJSON_IsNull(tr))
                rc = ds_row_fail(at, field, "%s: expected true or false, found %s.",
                                 ch->training_key, eft_json_kind(tr));
        }
    }
    tok_ids ids = {0};
    int32_t *labels = NULL;
    size_t cap = 0;
    if (!rc && chat_tokenize(f->tok, ch->tmpl, m, k, &ch->opts, &ids, &labels, &cap)) {
        char *where = ds_row_where(at->src, at->row);
        eft_err_context("%s: %s", where, ch->messages_key);
        eft_free(where);
        rc = -1;
    }
    if (!rc) ds_samples_add(out, ids.ids, labels, (int64_t)ids.n);
    tok_ids_free(&ids);
    eft_free(labels);
    for (int j = 0; j <= n; j++) eft_free(joined[j]);
    eft_free(joined);
    eft_free(m);
    cJSON_Delete(parsed);
    return rc;
}
