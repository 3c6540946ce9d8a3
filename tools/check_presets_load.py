#!/usr/bin/env python3
"""check_presets_load.py: every `eft init-model` preset loads in transformers, with no missing or
unexpected weights, in the multimodal layout and the text-only one, and runs a forward pass.

    tools/check_presets_load.py BUILD_DIR     (python with torch + transformers 5.x)
"""
import subprocess
import sys
import tempfile

import torch
import transformers
from transformers import AutoConfig


def main():
    eft = sys.argv[1] + "/eft"
    presets = [l.split()[0] for l in subprocess.check_output([eft, "init-model", "--list"], text=True).splitlines()]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for preset in presets:
            for flags in ([], ["--text-only"]):
                out = f"{tmp}/{preset}{''.join(flags)}"
                subprocess.run([eft, "init-model", "--preset", preset, "--out", out] + flags, check=True,
                               stdout=subprocess.DEVNULL)
                cls = getattr(transformers, AutoConfig.from_pretrained(out).architectures[0])
                model, info = cls.from_pretrained(out, dtype=torch.float32, output_loading_info=True)
                problems = {k: v for k, v in info.items() if v and k != "error_msgs" or (k == "error_msgs" and v)}
                ids = torch.tensor([[2, 5, 6, 7, 8, 9, 10, 11, 12, 13]])
                loss = model(input_ids=ids, labels=ids, use_cache=False).loss.item()
                status = "ok" if not problems else f"PROBLEMS {problems}"
                bad += bool(problems)
                print(f"{preset:14s} {'text-only' if flags else 'wrapper  '} {cls.__name__:40s} loss {loss:.4f} {status}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
