#!/usr/bin/env python3
"""make_demo_data.py: the demo's tokenizer and dataset (examples/demo/), deterministic.

- tokenizer.json: a small Gemma-style BPE tokenizer (the same pipeline as Gemma's: spaces become
  "▁", byte fallback, <bos> added by the post-processor), with Gemma 4's chat tokens <|turn> and
  <turn|>, every printable ASCII character, the 256 byte-fallback pieces and a few merges for the
  chat template's words. Checked here against Hugging Face `tokenizers`, which must load it and
  give the ids eft gives (the test suite checks eft's side).
- train.jsonl / eval.jsonl: a task a tiny model learns in a couple of minutes on a laptop CPU:
  reverse a short lowercase word, in Gemma 4 chat format (rendered with enable_thinking, so that
  the generation prompt is the framing the model was trained on: see examples/demo/config.yaml)
  ({"messages": [{"role": "user", "content": "reverse: table"},
                 {"role": "assistant", "content": "elbat"}]}).

    python tools/make_demo_data.py     (needs the `tokenizers` package only to check the file)
"""
import json
import os
import random

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "demo")


def tokenizer_json():
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<|turn>", "<turn|>", "<|think|>"]
    vocab = {}
    for s in specials:
        vocab[s] = len(vocab)
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    pieces = ["▁", "\n"] + [chr(c) for c in range(33, 127)]
    for p in pieces:
        vocab.setdefault(p, len(vocab))
    # A few merges, so that the BPE path is exercised: the template's role names and prompt word.
    merges = []
    for word in ["user", "model", "system", "reverse"]:
        cur = word[0]
        for ch in word[1:]:
            merges.append([cur, ch])
            cur += ch
            vocab.setdefault(cur, len(vocab))
    added = [{"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for s in specials]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                          "invert": False},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<bos>", "type_id": 1}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def conversations(rng, n):
    rows = []
    for _ in range(n):
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 6)))
        rows.append({"messages": [{"role": "user", "content": f"reverse: {word}"},
                                  {"role": "assistant", "content": word[::-1]}]})
    return rows


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = tokenizer_json()
    with open(os.path.join(OUT, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
                   "add_bos_token": True, "add_eos_token": False,
                   "tokenizer_class": "GemmaTokenizer"}, f, indent=1)
    rng = random.Random(2026)
    for name, n in (("train.jsonl", 3000), ("eval.jsonl", 200)):
        with open(os.path.join(OUT, name), "w") as f:
            for row in conversations(rng, n):
                f.write(json.dumps(row) + "\n")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return
    t = Tokenizer.from_file(os.path.join(OUT, "tokenizer.json"))
    enc = t.encode("<|turn>user\nreverse: table<turn|>\n")
    print("vocab", t.get_vocab_size(), "example ids", enc.ids)


if __name__ == "__main__":
    main()
