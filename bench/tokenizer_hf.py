#!/usr/bin/env python3
"""tokenizer_hf.py: the Hugging Face side of bench/bench_tokenizer.sh.

  corpus  OUT.jsonl --reference reference.jsonl --mb 30
          writes a deterministic benchmark corpus, one {"text": ...} document a line: Python
          source files and the Python reference manual's prose (from this interpreter's
          standard library), and the reference strings (many scripts, emoji, added tokens)
          recombined and varied.
  encode  --tokenizer tokenizer.json --corpus IN.jsonl [--eft-ids IDS.txt] [--repeat N]
          times tokenizers' encode_batch over the corpus (all cores, Rust's own threads),
          prints MB/s, and checks that the ids eft wrote (one line of ids a document) agree.

Benchmark tooling only: eft itself never runs Python.
"""
import argparse
import json
import os
import random
import sys
import sysconfig
import time


def stdlib_sources():
    root = sysconfig.get_paths()["stdlib"]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("test", "site-packages", "idlelib"))
        for name in sorted(filenames):
            if name.endswith(".py"):
                try:
                    with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                        yield f.read()
                except (UnicodeDecodeError, OSError):
                    pass


def split_docs(text, rng, lo=500, hi=12000):
    """Cuts text at line ends into documents of lo..hi bytes (roughly)."""
    lines = text.splitlines(keepends=True)
    doc, size, want = [], 0, rng.randint(lo, hi)
    for line in lines:
        doc.append(line)
        size += len(line)
        if size >= want:
            yield "".join(doc)
            doc, size, want = [], 0, rng.randint(lo, hi)
    if doc:
        yield "".join(doc)


def varied_reference(refs, rng):
    """One document made of several reference strings, some varied."""
    parts = []
    for _ in range(rng.randint(3, 30)):
        s = rng.choice(refs)
        r = rng.random()
        if r < 0.15:
            s = s.upper()
        elif r < 0.3:
            s = "".join(str(rng.randint(0, 9)) if c.isdigit() else c for c in s)
        elif r < 0.4:
            s = s[::-1]
        parts.append(s)
        parts.append(rng.choice([" ", "\n", "\n\n", "  ", "\t", ". ", ""]))
    return "".join(parts)


def make_corpus(args):
    rng = random.Random(0)
    budget = int(args.mb * 1e6)
    refs = [json.loads(line)["text"] for line in open(args.reference, encoding="utf-8")]
    import pydoc_data.topics

    prose = "\n\n".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))
    shares = [("code", 0.45), ("prose", 0.25), ("reference", 0.30)]
    docs = []
    for kind, share in shares:
        want, got = int(budget * share), 0
        if kind == "code":
            for src in stdlib_sources():
                for d in split_docs(src, rng):
                    docs.append(d)
                    got += len(d.encode())
                if got >= want:
                    break
        elif kind == "prose":
            while got < want:
                for d in split_docs(prose, rng):
                    docs.append(d)
                    got += len(d.encode())
                    if got >= want:
                        break
        else:
            while got < want:
                d = varied_reference(refs, rng)
                docs.append(d)
                got += len(d.encode())
    rng.shuffle(docs)
    with open(args.out, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
    total = sum(len(d.encode()) for d in docs)
    print(f"corpus: {len(docs)} documents, {total / 1e6:.1f} MB -> {args.out}")


def encode(args):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(args.tokenizer)
    texts = [json.loads(line)["text"] for line in open(args.corpus, encoding="utf-8")]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    best = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        encs = tok.encode_batch(texts, add_special_tokens=True)
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    print(f"hf: {mb:.1f} MB in {best:.2f} s: {mb / best:.2f} MB/s "
          f"({sum(len(e.ids) for e in encs) / best / 1e6:.2f} M tokens/s)")
    if args.eft_ids:
        with open(args.eft_ids) as f:
            eft = [list(map(int, line.split())) for line in f]
        bad = [i for i, (e, h) in enumerate(zip(eft, encs)) if e != h.ids]
        if len(eft) != len(encs) or bad:
            print(f"MISMATCH: {len(bad)} of {len(encs)} documents differ (first: {bad[:5]}), "
                  f"{len(eft)} eft lines", file=sys.stderr)
            sys.exit(1)
        print(f"ids: eft and hf agree on all {len(encs)} documents")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corpus")
    c.add_argument("out")
    c.add_argument("--reference", required=True)
    c.add_argument("--mb", type=float, default=30)
    e = sub.add_parser("encode")
    e.add_argument("--tokenizer", required=True)
    e.add_argument("--corpus", required=True)
    e.add_argument("--eft-ids")
    e.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    make_corpus(args) if args.cmd == "corpus" else encode(args)


if __name__ == "__main__":
    main()
