/* tokenizer.h: Hugging Face `tokenizer.json` BPE tokenizers (Gemma 3 and Gemma 4), in C.
 *
 * Gives the same ids as Hugging Face `tokenizers` for the pipeline Gemma's tokenizer.json uses:
 *
 *   added tokens   matched on the raw text, longest match first (special or not); the text
 *                  between them goes on through the pipeline
 *   normalizer     Replace (string patterns), or a Sequence of them, or none
 *   pre-tokenizer  Split (string pattern, any behaviour but invert), a Sequence of them, or none
 *   model          BPE with byte fallback, fuse_unk, ignore_merges; merges as ["a", "b"] or "a b"
 *   post-processor TemplateProcessing (adds <bos>), or none
 *   decoder        Replace, ByteFallback, Fuse, Strip, in a Sequence, or none
 *
 * Any other kind (Metaspace, ByteLevel, NFKC, regex patterns, BPE dropout, subword prefixes...)
 * is refused at load with an error that names it, never silently misencoded.
 *
 * Input text must be UTF-8, as it always is for Hugging Face (Rust `&str`): tok_encode rejects
 * invalid UTF-8 with an error naming the byte offset of the first bad byte.
 *
 * Speed: BPE is exact but split, where the vocabulary proves it safe, into short chunks that are
 * cached per thread (see tok_bpe.c); tok_encode_batch spreads documents over OpenMP threads. A
 * loaded tokenizer is read-only and may be shared by any number of threads.
 *
 * Not here: chat templates (src/text/chat_*), truncation and padding (the data pipeline cuts
 * sequences itself; a tokenizer.json that asks for them is loaded with a warning).
 */
#ifndef EFT_TEXT_TOKENIZER_H
#define EFT_TEXT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tok_tokenizer tok_tokenizer;

/* path: a tokenizer.json file or a folder holding one. A tokenizer_config.json beside it, when
 * present, names the eos/pad/unk tokens. NULL with eft_fail on error (the message names the
 * file and what is wrong). Owned by the caller; tok_free. */
tok_tokenizer *tok_load(const char *path);
/* The same from memory: json[0..n) is a tokenizer.json, config[0..config_n) an optional
 * tokenizer_config.json (NULL for none); `name` is used in error messages. */
tok_tokenizer *tok_load_mem(const char *json, size_t n, const char *config, size_t config_n,
                            const char *name);
void tok_free(tok_tokenizer *t);

int tok_vocab_size(const tok_tokenizer *t);                /* highest id + 1, added tokens too */
int32_t tok_id(const tok_tokenizer *t, const char *piece); /* -1 when absent */
const char *tok_piece(const tok_tokenizer *t, int32_t id); /* NULL when no token has this id */
bool tok_is_special(const tok_tokenizer *t, int32_t id);   /* an added token marked special */
int32_t tok_bos_id(const tok_tokenizer *t); /* the post-processor's first token; -1 if none */
/* From tokenizer_config.json when present (eos_token, pad_token), else the tokens named <eos>
 * and <pad>; -1 when absent. */
int32_t tok_eos_id(const tok_tokenizer *t);
int32_t tok_pad_id(const tok_tokenizer *t);
int32_t tok_unk_id(const tok_tokenizer *t); /* the BPE model's unk_token; -1 if none */

/* A growable list of token ids with optional byte offsets into the encoded text. Zero-initialise
 * it; tok_ids_free releases it. start/end are NULL until offsets are asked for
 * (tok_encode_offsets); from then on every encode into this list fills them too, so the three
 * arrays stay in step. */
typedef struct tok_ids {
    int32_t *ids;          /* [n] */
    uint32_t *start, *end; /* [n] each token's bytes text[start, end), or NULL */
    size_t n, cap;
} tok_ids;

void tok_ids_clear(tok_ids *out); /* n = 0; keeps the memory */
void tok_ids_free(tok_ids *out);

/* Appends the tokens of text[0..n) to out. add_special applies the post-processor (the <bos>
 * that Gemma's template adds); added tokens in the text are matched either way. Returns 0, or -1
 * with eft_fail (invalid UTF-8, or a text of 4 GiB or more); out is then unchanged.
 *
 * Offsets are byte offsets into text, [start, end), as Hugging Face gives them: a token covers
 * the original bytes its normalised bytes came from (a "▁" covers the space it replaced), a
 * token added by the post-processor has [0, 0), and each byte-fallback token of a character
 * that is not in the vocabulary covers the whole character (all of its bytes), so that several
 * consecutive tokens may share one span. */
int tok_encode(const tok_tokenizer *t, const char *text, size_t n, bool add_special, tok_ids *out);
/* tok_encode that also fills out->start and out->end (allocating them on first use). */
int tok_encode_offsets(const tok_tokenizer *t, const char *text, size_t n, bool add_special,
                       tok_ids *out);
/* Encodes count texts on the OpenMP threads (eft_threads()), appending texts[i][0..lens[i]) to
 * outs[i] (offsets too where outs[i].start is set). On error returns -1 with the message of the
 * first failing text, prefixed by its index; the outs of texts that did not fail are filled. */
int tok_encode_batch(const tok_tokenizer *t, const char *const *texts, const size_t *lens,
                     size_t count, bool add_special, tok_ids *outs);

/* Decodes ids to a NUL-terminated string (owned by the caller; eft_free) with the tokenizer's
 * decoder. skip_special drops special tokens; ids that name no token are dropped, as Hugging
 * Face drops them. */
char *tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, bool skip_special);

#endif
