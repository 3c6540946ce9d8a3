/* gemma4_tokenizer.h: a Gemma-4-style tokenizer for tests, derived from ../shared's Gemma 3 one.
 *
 * The Gemma 4 tokenizer has Gemma 3's format and vocabulary with special tokens renamed and added
 * (../shared/spec/gemma4.md section 9). The derived folder holds:
 *
 *   tokenizer.json         Gemma 3's, with these added tokens renamed (and marked special):
 *                          46 <|tool>  47 <tool|>  48 <|tool_call>  49 <tool_call|>
 *                          50 <|tool_response>  51 <tool_response|>  52 <|"|>  98 <|think|>
 *                          100 <|channel>  101 <channel|>  105 <|turn>  106 <turn|>
 *                          255999 <|image>  256000 <|audio>  258880 <|image|>  258881 <|audio|>
 *                          258882 <image|>  258883 <audio|>  258884 <|video|>
 *                          and <image_soft_token> (262144) dropped: exactly 262144 ids.
 *   tokenizer_config.json  renamed alike: eos_token <turn|>, boi/eoi/image tokens <|image>,
 *                          <image|>, <|image|>; no chat_template key (see the next file).
 *   chat_template.jinja    ../shared/data/chat-templates/gemma4.jinja, when present.
 *
 * Whether Gemma 4's ordinary pieces equal Gemma 3's is unverified (spec [UNV]); tests that use
 * this tokenizer check eft's handling of the format and the special tokens, not Gemma 4's ids
 * for ordinary text.
 */
#ifndef EFT_TEST_GEMMA4_TOKENIZER_H
#define EFT_TEST_GEMMA4_TOKENIZER_H

/* The folder, built once per build tree (test-fixtures/gemma4-tokenizer-v1/ under the tests'
 * working directory, written atomically so that parallel tests may race), or the test is
 * skipped when ../shared is absent. Owned by the caller (eft_free). Load it with tok_load. */
char *test_gemma4_tokenizer_path(void);

#endif
