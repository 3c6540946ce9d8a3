#!/usr/bin/env python3
"""make_merge_reference.py: what PEFT's merge_and_unload makes of the golden LoRA fixtures.

    tools/make_merge_reference.py BUILD_DIR [--python PYTHON]   (PYTHON: torch, transformers, peft)

For each adapter fixture of tests/data_files/golden/ (made by make_peft_fixtures.py, lora_B
random) it rebuilds the base checkpoint with `eft init-model --seed S` (S from the fixture's
metadata), loads it in fp32 with the adapter (PeftModel.from_pretrained), merges
(merge_and_unload: W + (B A) * s in fp32, per expert for target_parameters) and rounds the
adapted weights to bf16, the checkpoint's dtype: Axolotl's merge-lora formula,
bf16(fp32(W) + delta). Only the adapted tensors are stored, under their checkpoint names, in
tests/data_files/golden/<fixture>-merged.safetensors; tests/peft/test_lora_merge.c compares
`eft merge-lora` against them.
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(os.path.dirname(HERE), "tests", "data_files", "golden")
FIXTURES = [("tiny-26b-a4b-lora", "tiny-26b-a4b"), ("tiny-31b-lora", "tiny-31b")]

MERGE = r"""
import sys, json, torch, transformers
from peft import PeftModel
from safetensors import safe_open
from safetensors.torch import save_file
model_dir, adapter, out = sys.argv[1:]
cfg = transformers.AutoConfig.from_pretrained(model_dir)
base = getattr(transformers, cfg.architectures[0]).from_pretrained(model_dir, dtype=torch.float32)
peft_model = PeftModel.from_pretrained(base, adapter)
adapted = set()
for name, module in peft_model.named_modules():
    if hasattr(module, "lora_A") and "default" in module.lora_A:
        path = name.replace("base_model.model.", "", 1).replace(".base_layer", "")
        if hasattr(module, "parameter_name"):  # ParamWrapper: the experts' own parameter
            adapted.add(path + "." + module.parameter_name)
        else:
            adapted.add(path + ".weight")
merged = peft_model.merge_and_unload()
state = merged.state_dict()
with safe_open(model_dir + "/model.safetensors", "pt") as f:
    names = set(f.keys())
result = {}
for key in sorted(adapted):
    assert key in names, key
    result[key] = state[key].to(torch.bfloat16).contiguous()
save_file(result, out, metadata={"format": "pt", "tensors": str(len(result))})
print(len(result))
"""


def seed_of(path):
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        return int(f.metadata()["seed"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    eft = os.path.join(os.path.abspath(args.build), "eft")
    with tempfile.TemporaryDirectory() as tmp:
        for name, preset in FIXTURES:
            seed = seed_of(os.path.join(GOLDEN, name + ".safetensors"))
            model = os.path.join(tmp, name)
            subprocess.run([eft, "init-model", "--preset", preset, "--out", model, "--seed",
                            str(seed)], check=True, stdout=subprocess.DEVNULL)
            out = os.path.join(GOLDEN, name + "-merged.safetensors")
            n = subprocess.run([args.python, "-c", MERGE, model, os.path.join(GOLDEN, name), out],
                               check=True, capture_output=True, text=True).stdout.split()[-1]
            print(f"{name}: {n} merged tensors, base seed {seed}")


if __name__ == "__main__":
    main()
