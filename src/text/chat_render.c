/* chat_render.c: the gemma4, gemma3 and chatml templates (see chat.h for what each writes),
 * writing the text and where each message's content landed.
 *
 * Each function follows its Jinja source statement by statement for plain string messages; the
 * sources are ../shared/data/chat-templates/gemma4.jinja and Axolotl's gemma3.jinja and
 * chatml.jinja. Not here: tools, tool_calls, reasoning fields, content parts.
 */
#include "text/chat_internal.h"

#include "base/err.h"

#include <assert.h>
#include <string.h>

static const char *const known_roles[] = {"system", "developer", "user", "assistant", "tool"};

static bool is(const chat_msg *m, const char *role) {
    return strcmp(m->role, role) == 0;
}

static int check_messages(chat_template_kind k, const chat_msg *m, int n, int base) {
    if (n <= 0)
        return eft_fail("empty conversation: the %s template needs at least one message. Drop "
                        "the sample or give it messages.",
                        chat_template_name(k));
    for (int i = 0; i < n; i++) {
        bool known = false;
        for (size_t r = 0; m[i].role && r < EFT_ARRAY_LEN(known_roles); r++)
            known = known || is(&m[i], known_roles[r]);
        if (!known)
            return eft_fail("message %d: unknown role \"%s\"; eft knows system, developer, user, "
                            "assistant and tool. Map other names with the dataset's `roles:` key.",
                            base + i + 1, m[i].role ? m[i].role : "(none)");
        if (!m[i].content && k == CHAT_CHATML)
            return eft_fail("message %d (%s) has no content, which the chatml template cannot "
                            "render. Give it a string (\"\" for an empty turn).",
                            base + i + 1, m[i].role);
    }
    return 0;
}

static const char *content(const chat_msg *m) {
    return m->content ? m->content : "";
}

static chat_span empty_at(const eft_buf *out) {
    return (chat_span){out->len, out->len};
}

/* thinking: the template's enable_thinking. It opens a system turn (even without a system
 * message) with <|think|>, and drops the empty thought channel from the generation prompt. */
static void render_gemma4(const chat_msg *m, int n, bool gen, bool thinking, eft_buf *out,
                          chat_span *spans) {
    eft_buf_puts(out, "<bos>");
    int first = 0;
    bool system = n > 0 && (is(&m[0], "system") || is(&m[0], "developer"));
    if (system || thinking) {
        eft_buf_puts(out, "<|turn>system\n");
        if (thinking) eft_buf_puts(out, "<|think|>\n");
        if (system) spans[0] = chat_put_trimmed(out, content(&m[0])), first = 1;
        eft_buf_puts(out, "<turn|>\n");
    }
    const chat_msg *prev = NULL; /* the last non-tool message since `first` */
    for (int i = first; i < n; i++) {
        if (is(&m[i], "tool")) { /* shown only after an assistant's tool_calls */
            spans[i] = empty_at(out);
            continue;
        }
        bool model = is(&m[i], "assistant");
        if (!(model && prev && is(prev, "assistant"))) {
            eft_buf_puts(out, "<|turn>");
            eft_buf_puts(out, model ? "model" : m[i].role);
            eft_buf_putc(out, '\n');
        }
        spans[i] =
            model ? chat_put_stripped(out, content(&m[i])) : chat_put_trimmed(out, content(&m[i]));
        eft_buf_puts(out, "<turn|>\n");
        prev = &m[i];
    }
    if (gen)
        eft_buf_puts(out,
                     thinking ? "<|turn>model\n" : "<|turn>model\n<|channel>thought\n<channel|>");
}

static int render_gemma3(const chat_msg *m, int n, int base, bool gen, eft_buf *out,
                         chat_span *spans) {
    eft_buf_puts(out, "<bos>");
    int first = is(&m[0], "system") ? 1 : 0;
    if (first) spans[0] = empty_at(out); /* rendered only inside the first turn, if any */
    for (int i = first; i < n; i++) {
        int k = i - first;
        if (is(&m[i], "user") != (k % 2 == 0))
            return eft_fail("message %d (%s): the gemma3 template requires roles to alternate "
                            "user/assistant/user/... after an optional first system message (its "
                            "error: \"Conversation roles must alternate user/assistant/user/"
                            "assistant/...\"). Fix the conversation or use another template.",
                            base + i + 1, m[i].role);
        eft_buf_puts(out, "<start_of_turn>");
        eft_buf_puts(out, is(&m[i], "assistant") ? "model" : m[i].role);
        eft_buf_putc(out, '\n');
        if (k == 0 && first) {
            size_t at = out->len;
            eft_buf_puts(out, content(&m[0])); /* not trimmed */
            spans[0] = (chat_span){at, out->len};
            eft_buf_puts(out, "\n\n");
        }
        spans[i] = chat_put_trimmed(out, content(&m[i]));
        eft_buf_puts(out, "<end_of_turn>\n");
    }
    if (gen) eft_buf_puts(out, "<start_of_turn>model\n");
    return 0;
}

static void render_chatml(const chat_msg *m, int n, bool gen, eft_buf *out, chat_span *spans) {
    for (int i = 0; i < n; i++) {
        eft_buf_puts(out, "<|im_start|>");
        eft_buf_puts(out, m[i].role);
        eft_buf_putc(out, '\n');
        size_t at = out->len;
        eft_buf_puts(out, m[i].content);
        spans[i] = (chat_span){at, out->len};
        eft_buf_puts(out, "<|im_end|>\n");
    }
    if (gen) eft_buf_puts(out, "<|im_start|>assistant\n");
}

int chat_render_spans(chat_template_kind k, const chat_msg *m, int n, int base,
                      bool add_generation_prompt, bool thinking, eft_buf *out, chat_span *spans) {
    if (check_messages(k, m, n, base) < 0) return -1;
    switch (k) {
    case CHAT_GEMMA4:
        render_gemma4(m, n, add_generation_prompt, thinking, out, spans);
        return 0;
    case CHAT_GEMMA3:
        return render_gemma3(m, n, base, add_generation_prompt, out, spans);
    case CHAT_CHATML:
        render_chatml(m, n, add_generation_prompt, out, spans);
        return 0;
    }
    assert(!"unknown chat_template_kind");
    return -1;
}

char *chat_render(chat_template_kind k, const chat_msg *m, int n, bool add_generation_prompt) {
    return chat_render_opts(k, m, n, add_generation_prompt, NULL);
}

char *chat_render_opts(chat_template_kind k, const chat_msg *m, int n, bool add_generation_prompt,
                       const chat_opts *o) {
    eft_buf out = {0};
    chat_span *spans = eft_calloc(n > 0 ? (size_t)n : 1, sizeof *spans);
    int rc =
        chat_render_spans(k, m, n, 0, add_generation_prompt, o && o->enable_thinking, &out, spans);
    eft_free(spans);
    if (rc < 0) {
        eft_buf_free(&out);
        return NULL;
    }
    eft_buf_reserve(&out, 0); /* an empty rendering is still a string */
    return eft_buf_take(&out);
}
