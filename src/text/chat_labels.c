/* chat_labels.c: chat_tokenize, the token ids and Axolotl's labels of a conversation, and the
 * options that steer them (see chat.h for the rule).
 *
 * Axolotl (0.19, ChatTemplateStrategy) finds a turn's content by rendering the conversation again
 * with a placeholder in its place and diffing characters; the renderer here records the same
 * byte spans while writing. A span becomes tokens [s, e): s the first token ending after the
 * span starts, e the first token starting at or after it ends (Axolotl's two bisections over the
 * token offsets). One sweep over tokens and messages together, so the cost is linear.
 */
#include "text/chat_internal.h"

#include "base/err.h"

#include <string.h>

/* Axolotl accepts an EOT/EOS token up to this many positions after the content's end. */
#define EOT_WINDOW 3

static const char *const mode_names[] = {[CHAT_EOS_TURN] = "turn",
                                         [CHAT_EOS_ALL] = "all",
                                         [CHAT_EOS_LAST] = "last",
                                         [CHAT_EOS_NONE] = "none"};

int chat_eos_mode_by_name(const char *name, chat_eos_mode *out) {
    for (size_t i = 0; i < EFT_ARRAY_LEN(mode_names); i++)
        if (strcmp(name, mode_names[i]) == 0) {
            *out = (chat_eos_mode)i;
            return 0;
        }
    return eft_fail("unknown value \"%s\"; train_on_eos and train_on_eot take turn, all, last or "
                    "none.",
                    name);
}

chat_opts chat_opts_default(void) {
    static const char *const assistant[] = {"assistant"};
    return (chat_opts){.roles_to_train = assistant, .n_roles_to_train = 1};
}

int chat_eot_ids(const tok_tokenizer *t, const char *const *tokens, int n, int32_t *ids) {
    tok_ids enc = {0};
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        tok_ids_clear(&enc);
        rc = tok_encode(t, tokens[i], strlen(tokens[i]), false, &enc);
        if (rc == 0 && enc.n != 1)
            rc = eft_fail("eot_tokens: \"%s\" is %zu tokens, not one. List the tokenizer's own "
                          "end-of-turn token (for Gemma 4: \"<turn|>\").",
                          tokens[i], enc.n);
        if (rc == 0) ids[i] = enc.ids[0];
    }
    tok_ids_free(&enc);
    return rc;
}

static bool has_id(const int32_t *ids, int n, int32_t id) {
    for (int i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

int chat_opts_check(const tok_tokenizer *t, const chat_opts *o) {
    int32_t eos = tok_eos_id(t);
    if (eos >= 0 && has_id(o->eot_ids, o->n_eot, eos) && o->train_on_eos != o->train_on_eot)
        return eft_fail("train_on_eos is %s but train_on_eot is %s, and eot_tokens holds the eos "
                        "token \"%s\", which cannot be both. Give them the same value.",
                        mode_names[o->train_on_eos], mode_names[o->train_on_eot],
                        tok_piece(t, eos));
    return 0;
}

static bool trained(const chat_msg *m, const chat_opts *o) {
    if (m->train >= 0) return m->train != 0;
    if (o->train_on_inputs) return true;
    for (int r = 0; r < o->n_roles_to_train; r++)
        if (strcmp(m->role, o->roles_to_train[r]) == 0) return true;
    return false;
}

/* The first token in ids[e .. e + EOT_WINDOW] that is one of want[0..n_want), or -1. */
static long find_after(const int32_t *ids, size_t n_ids, size_t e, const int32_t *want,
                       int n_want) {
    for (size_t j = e; j < n_ids && j <= e + EOT_WINDOW; j++)
        if (has_id(want, n_want, ids[j])) return (long)j;
    return -1;
}

/* Labels one conversation's tokens (ids/start/end [nt]) into lab[nt], all CHAT_IGNORE first. */
static void label(const chat_msg *m, const chat_span *spans, int n, const chat_opts *o, int32_t eos,
                  const tok_ids *tok, int32_t *lab) {
    size_t nt = tok->n, s = 0;
    long last[2] = {-1, -1}; /* EOT, EOS */
    const chat_eos_mode mode[2] = {o->train_on_eot, o->train_on_eos};
    const int32_t *want[2] = {o->eot_ids, &eos};
    const int n_want[2] = {o->n_eot, eos >= 0 ? 1 : 0};
    bool any_all = o->train_on_eos == CHAT_EOS_ALL || o->train_on_eot == CHAT_EOS_ALL;

    for (size_t i = 0; i < nt; i++) lab[i] = CHAT_IGNORE;
    for (int i = 0; i < n; i++) {
        bool train = trained(&m[i], o);
        if (!train && !any_all) continue;
        chat_span sp = spans[i];
        if (sp.start == sp.end) continue; /* nothing rendered: no span, no EOT */
        while (s < nt && tok->end[s] <= sp.start) s++;
        size_t e = s;
        while (e < nt && tok->start[e] < sp.end) e++;
        if (s == e) continue; /* no token overlaps it (a normalizer dropped its bytes) */
        if (train)
            for (size_t j = s; j < e; j++) lab[j] = tok->ids[j];
        for (int w = 0; w < 2; w++) {
            long j = find_after(tok->ids, nt, e, want[w], n_want[w]);
            if (j < 0) continue;
            last[w] = j;
            if (mode[w] == CHAT_EOS_ALL || (mode[w] == CHAT_EOS_TURN && train))
                lab[j] = tok->ids[j];
        }
    }
    for (int w = 0; w < 2; w++)
        if (mode[w] == CHAT_EOS_LAST && last[w] >= 0) lab[last[w]] = tok->ids[last[w]];
}

static void append(tok_ids *out, const tok_ids *add) {
    if (out->n + add->n > out->cap) {
        size_t cap = out->cap ? out->cap : 256;
        while (cap < out->n + add->n) cap *= 2;
        out->ids = eft_realloc(out->ids, cap * sizeof *out->ids);
        if (out->start) {
            out->start = eft_realloc(out->start, cap * sizeof *out->start);
            out->end = eft_realloc(out->end, cap * sizeof *out->end);
        }
        out->cap = cap;
    }
    memcpy(out->ids + out->n, add->ids, add->n * sizeof *add->ids);
    if (out->start) {
        memcpy(out->start + out->n, add->start, add->n * sizeof *add->start);
        memcpy(out->end + out->n, add->end, add->n * sizeof *add->end);
    }
    out->n += add->n;
}

int chat_tokenize(const tok_tokenizer *t, chat_template_kind k, const chat_msg *m, int n,
                  const chat_opts *o, tok_ids *out_ids, int32_t **labels, size_t *labels_cap) {
    if (chat_opts_check(t, o) < 0) return -1;
    int base = 0;
    if (o->drop_system_message && n > 0 && m[0].role && strcmp(m[0].role, "system") == 0) {
        m++;
        n--;
        base = 1;
    }
    eft_buf text = {0};
    tok_ids tok = {0};
    chat_span *spans = eft_calloc(n > 0 ? (size_t)n : 1, sizeof *spans);
    int rc = chat_render_spans(k, m, n, base, false, o->enable_thinking, &text, spans);
    if (rc == 0) rc = tok_encode_offsets(t, text.data, text.len, false, &tok);
    if (rc == 0) {
        size_t at = out_ids->n;
        append(out_ids, &tok);
        if (*labels_cap < out_ids->n) {
            *labels_cap = out_ids->cap;
            *labels = eft_realloc(*labels, *labels_cap * sizeof **labels);
        }
        label(m, spans, n, o, tok_eos_id(t), &tok, *labels + at);
    }
    eft_free(spans);
    tok_ids_free(&tok);
    eft_buf_free(&text);
    return rc;
}
