/* chat.h: chat templates rendered in C, token-exact with their Jinja sources, and the labels that
 * Axolotl's `chat_template` prompt strategy gives a conversation.
 *
 * Templates (the Jinja each one reproduces, for plain string messages):
 *
 *   gemma4  ../shared/data/chat-templates/gemma4.jinja (= Axolotl's gemma4 and gemma4_unified),
 *           thinking off, no tools:
 *             <bos>[<|turn>system\n{first system/developer content|trim}<turn|>\n]
 *             then per message  <|turn>{role}\n{content}<turn|>\n   (assistant -> "model";
 *             assistant content has its <|channel>...<channel|> reasoning stripped, then trim;
 *             other roles trim). An assistant message right after another assistant message
 *             (tool messages in between ignored) shares its <|turn>model\n header, so two of them
 *             give <|turn>model\nA<turn|>\nB<turn|>\n. Tool messages render nothing (the template
 *             shows tool output only after an assistant's tool_calls, which eft does not carry).
 *             Generation prompt: <|turn>model\n<|channel>thought\n<channel|>.
 *   gemma3  Axolotl's gemma3.jinja (renders as Google's Gemma 3 template for string content):
 *             <bos> then <start_of_turn>{role}\n{content|trim}<end_of_turn>\n per message; a
 *             first system message is put, untrimmed and followed by "\n\n", at the start of the
 *             first turn's content. Roles after it must alternate user, non-user, user, ...
 *             (else the template's "Conversation roles must alternate" error).
 *             Generation prompt: <start_of_turn>model\n.
 *   chatml  Axolotl's chatml.jinja: <|im_start|>{role}\n{content}<|im_end|>\n, content as is, no
 *           <bos>. Generation prompt: <|im_start|>assistant\n.
 *
 * "trim" is Jinja's, that is Python's str.strip(): the Unicode whitespace that Python's
 * str.isspace() accepts, not only ASCII.
 *
 * Labels (chat_tokenize) are Axolotl 0.19's, computed directly: Axolotl renders each turn again
 * with a placeholder in place of its content and diffs the texts to find the content's characters;
 * eft's renderer records those byte spans as it writes them. Then, as Axolotl does:
 *   - a turn is trained when msg.train says so, else when train_on_inputs is set or its role is
 *     in roles_to_train;
 *   - the tokens of a trained turn's content are labelled: every token that overlaps the content's
 *     bytes, so a token that straddles the boundary (chatml's "\n\n" when content starts with
 *     "\n") is trained. Headers, <bos>, the "\n" after each end-of-turn token are not;
 *   - the turn's EOT is the first EOT token (eot_ids) among the 4 tokens that follow its content
 *     (Axolotl: at most 3 positions after the span's end), its EOS likewise the tokenizer's eos;
 *     each is labelled when its mode is ALL, or TURN and the turn is trained; LAST labels only
 *     the last one found, NONE none. Only trained turns are looked at unless a mode is ALL;
 *   - a turn whose content renders to nothing (empty or blank content, reasoning only, a gemma4
 *     tool message, a gemma3 system message with no turn after it) has no span: nothing of it is
 *     labelled, not even its EOT;
 *   - gemma3's first system message is found where the template puts it, inside the first turn:
 *     trained (roles_to_train: [system]) it labels its text there, and that turn's <end_of_turn>
 *     only if the user's text after it is short enough to bring it within the window.
 * For Gemma 4 with eot_tokens ["<turn|>"] and the defaults this trains each assistant turn's
 * content and its closing <turn|>. tools/make_chat_labels.py runs Axolotl itself on a set of
 * conversations; tests/text/test_chat_cases.c checks eft against it token for token.
 *
 * Not here (the data pipeline's job): reading datasets, mapping role names (`roles:`) and message
 * keys, roles_to_train aliases, field_system, content parts and message_field_training_detail,
 * reasoning_content/tool_calls fields, tools, enable_thinking, truncation. Axolotl's legacy path
 * (roles_to_train and train_on_eos both explicitly empty) has no counterpart. Of Axolotl's check
 * of eot_tokens, eft keeps "one token each" (chat_eot_ids) and the eos conflict (chat_opts_check),
 * but not the dropping of eot tokens absent from the template source (which only matters when
 * such a token is typed inside message content).
 *
 * Speed: rendering, tokenizing and labelling are each one pass, linear in the conversation's
 * length. (Axolotl renders the whole conversation twice more per trained turn, and gemma4.jinja
 * itself looks back over earlier messages for each one.)
 */
#ifndef EFT_TEXT_CHAT_H
#define EFT_TEXT_CHAT_H

#include "text/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { CHAT_GEMMA4, CHAT_GEMMA3, CHAT_CHATML } chat_template_kind;

/* "gemma4", "gemma4_unified" (the same template), "gemma3", "chatml". Anything else: -1 with an
 * error that names the supported ones. */
int chat_template_by_name(const char *name, chat_template_kind *out);
const char *chat_template_name(chat_template_kind k); /* "gemma4", "gemma3", "chatml" */

/* Recognises a checkpoint's own template (for chat_template: tokenizer_default) as one of eft's:
 * its source must be one eft knows renders exactly as eft does (Axolotl's gemma4.jinja, Google's
 * or Axolotl's Gemma 3 template, Axolotl's chatml.jinja; compared after CRLF -> LF and trimming
 * whitespace at both ends). Otherwise -1 with an error naming `where` (the file) and saying to set
 * chat_template to gemma4, gemma3 or chatml. */
int chat_template_detect(const char *jinja_source, const char *where, chat_template_kind *out);
/* The same for a checkpoint folder: its chat_template.jinja, else tokenizer_config.json's
 * "chat_template" (a string, or a list of {name, template} whose "default" entry is used). */
int chat_template_from_checkpoint(const char *dir, chat_template_kind *out);

typedef struct chat_msg {
    const char *role;    /* normalised role: "system", "developer", "user", "assistant", "tool" */
    const char *content; /* UTF-8; NULL renders as "" in gemma4 and gemma3 (as their Jinja
                            does for a missing key) and is an error in chatml */
    int train;           /* -1: decided by roles_to_train; 0/1: per-message override
                            (message_field_training) */
} chat_msg;

typedef enum { CHAT_EOS_TURN, CHAT_EOS_ALL, CHAT_EOS_LAST, CHAT_EOS_NONE } chat_eos_mode;
/* "turn", "all", "last", "none"; anything else: -1 with an error naming them. */
int chat_eos_mode_by_name(const char *name, chat_eos_mode *out);

typedef struct chat_opts {
    const char *const *roles_to_train; /* normalised roles; default {"assistant"} */
    int n_roles_to_train;
    /* Default TURN. When the config leaves train_on_eot unset the caller copies train_on_eos. */
    chat_eos_mode train_on_eos, train_on_eot;
    const int32_t *eot_ids; /* eot_tokens as ids (chat_eot_ids); when the config leaves
                               eot_tokens unset, Axolotl uses the tokenizer's eos token */
    int n_eot;
    bool drop_system_message; /* drop the first message when its role is "system" */
    bool train_on_inputs;     /* every turn is trained (content and EOT/EOS as for assistant
                                 turns; headers and <bos> stay masked), unless msg.train is 0 */
    bool enable_thinking;     /* gemma4's template variable (chat_template_kwargs): a system turn
                                 opening with <|think|>, and a generation prompt without the
                                 empty thought channel. Ignored by gemma3 and chatml. */
} chat_opts;

/* roles_to_train {"assistant"}, TURN/TURN, no eot ids, both flags false. */
chat_opts chat_opts_default(void);

/* Maps eot_tokens to ids: each must tokenize to exactly one token (as Axolotl requires), else -1
 * with an error naming it. ids has room for n. */
int chat_eot_ids(const tok_tokenizer *t, const char *const *tokens, int n, int32_t *ids);
/* Axolotl's refusal: the tokenizer's eos is one of the eot ids but train_on_eos differs from
 * train_on_eot. -1 with an error saying to make them equal. chat_tokenize checks it too. */
int chat_opts_check(const tok_tokenizer *t, const chat_opts *o);

/* Renders the n messages (n >= 1) with the template, and with the generation prompt when asked.
 * A NUL-terminated string owned by the caller (eft_free), or NULL with an error naming the message
 * ("message 3 (assistant): ...") for an unknown role, an empty conversation, a role sequence the
 * template refuses, or NULL content in chatml. */
char *chat_render(chat_template_kind k, const chat_msg *m, int n, bool add_generation_prompt);
/* The same with the template variables of o (enable_thinking); o may be NULL. */
char *chat_render_opts(chat_template_kind k, const chat_msg *m, int n, bool add_generation_prompt,
                       const chat_opts *o);

/* Renders the conversation (without generation prompt, after drop_system_message), tokenizes it
 * without the post-processor (the template writes <bos> itself) and labels it as described above.
 *
 * The ids are appended to out_ids (with their byte offsets into the rendered text when out_ids
 * keeps offsets). *labels is an array parallel to out_ids->ids, grown with eft_realloc as needed
 * (*labels_cap counts its elements; start from NULL and 0): on return labels[i] for the appended
 * i is ids[i] where trained and -100 elsewhere, and labels before them are untouched. Returns 0,
 * or -1 with an error as for chat_render (or from the tokenizer), leaving out_ids and the labels
 * unchanged. A conversation with nothing trained is not an error here (the caller drops it). */
int chat_tokenize(const tok_tokenizer *t, chat_template_kind k, const chat_msg *m, int n,
                  const chat_opts *o, tok_ids *out_ids, int32_t **labels, size_t *labels_cap);

#define CHAT_IGNORE (-100) /* the label of a token that is not trained */

#endif
