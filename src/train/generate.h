/* generate.h: text generation with the base model and its adapter (eft inference).
 *
 * Greedy decoding (or sampling with a temperature and top-k, seeded): the prompt is rendered
 * with the chat template and its generation prompt, and tokens are added until an end-of-turn
 * token (eot_tokens, the tokenizer's eos) or max_new_tokens. Each new token re-runs the forward
 * over the whole sequence: correct, simple, and fast enough for the sizes eft runs on a CPU
 * today; a KV cache comes with the CUDA backend.
 */
#ifndef EFT_TRAIN_GENERATE_H
#define EFT_TRAIN_GENERATE_H

#include "io/config.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct gen_opts {
    int max_new_tokens; /* default 128 */
    double temperature; /* 0: greedy */
    int top_k;          /* 0: all */
    uint64_t seed;
} gen_opts;

typedef struct gen_session gen_session;

/* Loads the model (base_model, with lora_model_dir's adapter when set), the tokenizer and the
 * chat template of a checked config. Owned; gen_close. */
gen_session *gen_open(const eft_config *c, int max_tokens);
void gen_close(gen_session *s);

/* The model's reply (owned string) to a conversation of n messages, rendered with the config's
 * template and its generation prompt. */
#include "text/chat.h"
char *gen_reply(gen_session *s, const chat_msg *m, int n, const gen_opts *o);

#endif
