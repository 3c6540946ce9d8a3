#!/usr/bin/env python3
"""tokenizer_hf_cases.py: writes tests/data_files/tokenizer_hf_cases.jsonl, the Hugging Face
`tokenizers` answers (ids and byte offsets) that tests/text/test_tokenizer_hf.c checks eft against.

  /work/pyenv/bin/python tools/tokenizer_hf_cases.py ../shared/data/gemma3-tokenizer/tokenizer.json

The first line lists extra added tokens (lstrip, rstrip, single_word, normalized) that the test
appends to Gemma 3's tokenizer.json for the lines marked "flags": true. Offsets are converted to
bytes (Python's tokenizers reports characters).
"""
import json
import sys

from tokenizers import AddedToken, Tokenizer

EXTRA = [
    dict(content="<lx>", lstrip=True, normalized=False),
    dict(content="<rx>", rstrip=True, normalized=False),
    dict(content="<lrx>", lstrip=True, rstrip=True, normalized=False),
    dict(content="qzx", single_word=True, normalized=False),
    dict(content=" tok", normalized=True),
    dict(content="<nx>", lstrip=True, rstrip=True, normalized=True),
    dict(content="<sp>", special=True, lstrip=True),
]

PLAIN = [
    "", " ", "   ", "Hello world", "<start_of_turn>", "<start_of_turn><end_of_turn>", "\n\n",
    "\U00015e8b", "a\U00015e8bb", "héllo wörld ñ", "  leading and trailing  ", "tab\tand\nnew\r\nline",
    "<start_of_turn>user\nHi<end_of_turn>\n", "hello  world\t\tx", "\u2581\u2581 x", "日本語のテキスト",
    "emoji 👍🏽 and 🇯🇵 flags", "x<bos>y<eos>z", "<unused0><unused1>", "[multimodal] text",
    "1234567890 3.14159", "def f(x):\n    return x ** 2\n", "\u00a0\u2003nbsp", "<0x41>", "<unk>",
]

FLAGS = [
    "a <lx> b", "a   <lx>b", "a<rx>   b", "x  <lrx>  y", "<lx><lx>", "  <rx>  <lx>  ",
    "qzx", "a qzx b", "aqzx b", "a qzxb", "qzx.", "x tok y", "xtok y", " tok tok", "a  <sp>  b",
    "a <nx> b", "a\t<lx>\n\nb", "é qzx ü", "<lrx><lrx>", "x\u3000<lx>\u00a0y",
]


def byte_offsets(text, offsets):
    pos = [0]
    for ch in text:
        pos.append(pos[-1] + len(ch.encode()))
    return [pos[s] for s, _ in offsets], [pos[e] for _, e in offsets]


def main():
    base = Tokenizer.from_file(sys.argv[1])
    flagged = Tokenizer.from_str(base.to_str())
    flagged.add_tokens([AddedToken(d["content"], **{k: v for k, v in d.items() if k != "content"})
                        for d in EXTRA])
    flagged = Tokenizer.from_str(flagged.to_str())  # ids as loading a tokenizer.json gives them
    added = {t["content"]: t for t in json.loads(flagged.to_str())["added_tokens"]}
    out = [{"added": [added[d["content"]] for d in EXTRA]}]
    refs = [json.loads(line)["text"] for line in open(sys.argv[1].replace("tokenizer.json", "reference.jsonl"))]
    texts = PLAIN + [t for t in refs if len(t.encode()) < 160][:30]
    for flags, tok, cases in ((False, base, texts), (True, flagged, FLAGS)):
        for text in cases:
            enc = tok.encode(text, add_special_tokens=False)
            start, end = byte_offsets(text, enc.offsets)
            out.append({"flags": flags, "text": text, "ids": enc.ids, "start": start, "end": end})
    with open("tests/data_files/tokenizer_hf_cases.jsonl", "w", encoding="utf-8") as f:
        for o in out:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
    print(f"wrote {len(out)} lines")


if __name__ == "__main__":
    main()
