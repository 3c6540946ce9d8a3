/* chat_internal.h: what the chat_* files share (not public).
 *
 *   chat_text.c    Jinja's trim (Python's str.strip) and gemma4's strip_thinking
 *   chat_render.c  the three templates, writing the text and each message's content span
 *   chat_labels.c  chat_tokenize: tokens and Axolotl's labels from the spans; the options
 *   chat_detect.c  template names and recognising a checkpoint's template
 */
#ifndef EFT_TEXT_CHAT_INTERNAL_H
#define EFT_TEXT_CHAT_INTERNAL_H

#include "text/chat.h"

#include "base/buf.h"

#include <stddef.h>

/* Where a message's content landed in the rendered text: bytes [start, end). Empty (start == end)
 * when the template renders none of it: empty or blank content, a gemma4 tool message, a gemma3
 * system message with no turn after it. Spans of successive messages never overlap and never go
 * backwards. */
typedef struct chat_span {
    size_t start, end;
} chat_span;

/* Appends the rendering of m[0..n) to out and fills spans[0..n). -1 with an error naming the
 * message for what the template refuses (out is then partly written); messages are numbered from
 * base + 1, so that a caller who dropped some still names them as its user counts them. */
int chat_render_spans(chat_template_kind k, const chat_msg *m, int n, int base,
                      bool add_generation_prompt, bool thinking, eft_buf *out, chat_span *spans);

/* Python's str.strip() on s[0..n): *b and *e bound what remains. Bytes that are not valid UTF-8
 * are not whitespace. */
void chat_trim(const char *s, size_t n, size_t *b, size_t *e);
/* Appends s with Jinja's `| trim`; returns where it landed. */
chat_span chat_put_trimmed(eft_buf *out, const char *s);
/* Appends gemma4's strip_thinking(s): the parts of s between "<channel|>" markers, each cut at its
 * first "<|channel>", joined and trimmed. Returns where it landed. */
chat_span chat_put_stripped(eft_buf *out, const char *s);

#endif
