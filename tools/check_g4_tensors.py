#!/usr/bin/env python3
"""check_g4_tensors.py: compare eft's Gemma 4 tensor list with the one transformers builds.

For each checkpoint folder given (holding a config.json), builds the Hugging Face model class
named in `architectures` on the meta device (no memory, no weights), lists its text-model
parameters and layer_scalar buffers, and diffs names and shapes against
`eft info --model DIR --tensors`. Prints the parameter total transformers counts, which
tests/model/test_g4_plan.c uses as its reference.

Usage: /work/pyenv/bin/python tools/check_g4_tensors.py build/eft tests/data_files/gemma4/*
Needs torch and transformers (>= 5.5); never run by the test suite.
"""
import math
import subprocess
import sys

import torch
import transformers


def hf_tensors(folder):
    cfg = transformers.AutoConfig.from_pretrained(folder)
    cls = getattr(transformers, cfg.architectures[0])
    with torch.device("meta"):
        model = cls(cfg)
    # The text model: under model.language_model. in the wrappers, model. in a causal LM.
    wrapper = hasattr(model.model, "language_model")
    prefix = "model.language_model." if wrapper else "model."
    out = {}
    for name, p in model.named_parameters():
        if name.startswith(prefix) or name.startswith("lm_head"):
            out[name] = tuple(p.shape)
    for name, b in model.named_buffers():
        if name.endswith("layer_scalar"):
            out[name] = tuple(b.shape)
    return out


def eft_tensors(eft, folder):
    text = subprocess.run([eft, "info", "--model", folder, "--tensors"], check=True,
                          capture_output=True, text=True).stdout
    out, listing = {}, False
    for line in text.splitlines():
        if line.startswith("tensors ("):
            listing = True
        elif listing and line.strip():
            name = line.split()[0]
            dims = line[line.index("[") + 1:line.index("]")]
            out[name] = tuple(int(d) for d in dims.split(","))
    return out


def main():
    eft, folders = sys.argv[1], sys.argv[2:]
    bad = 0
    for folder in folders:
        hf, ours = hf_tensors(folder), eft_tensors(eft, folder)
        missing = sorted(set(hf) - set(ours))
        extra = sorted(set(ours) - set(hf))
        wrong = sorted(n for n in set(hf) & set(ours) if hf[n] != ours[n])
        total = sum(math.prod(s) for n, s in hf.items() if not n.endswith("layer_scalar"))
        ok = not (missing or extra or wrong)
        bad += not ok
        print(f"{folder}: {'ok' if ok else 'DIFFERS'}: {len(hf)} tensors, {total} parameters")
        for n in missing[:10]:
            print("  missing in eft:", n, hf[n])
        for n in extra[:10]:
            print("  not in transformers:", n, ours[n])
        for n in wrong[:10]:
            print("  shape differs:", n, "eft", ours[n], "transformers", hf[n])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
