#!/usr/bin/env python3
"""make_merge_reference.py: what PEFT's merge_and_unload makes of the golden LoRA fixtures.

    tools/make_merge_reference.py BUILD_DIR [--python PYTHON]
        (PYTHON: torch, transformers, peft; bitsandbytes for the QLoRA cases)

For each adapter fixture of tests/data_files/golden/ (made by make_peft_fixtures.py, lora_B
random) it rebuilds the base checkpoint with `eft init-model --seed S` (S from the fixture's
metadata), loads it in fp32 with the adapter (PeftModel.from_pretrained), merges
(merge_and_unload: W + (B A) * s in fp32, per expert for target_parameters) and rounds the
adapted weights to bf16, the checkpoint's dtype: Axolotl's merge-lora formula,
bf16(fp32(W) + delta). Only the adapted tensors are stored, under their checkpoint names, in
tests/data_files/golden/<fixture>-merged.safetensors; tests/peft/test_lora_merge.c compares
`eft merge-lora` against them.

QLoRA cases (<fixture>-qlora[-experts]-merged.safetensors): the same adapter read as the adapter
of a QLoRA run, merged as Axolotl merges one (axolotl-compat.md 4.3): before the delta, each
adapted tensor that was NF4 in training (every adapted linear weight; with quantize_moe_experts
the 3-D expert tensors too) goes through bitsandbytes' NF4 round trip on the CPU,
quantize_4bit(flattened fp32, blocksize=64, quant_type="nf4", compress_statistics=True) then
dequantize_4bit to float32 (by bitsandbytes' flat-block formula: gemma4_golden.py explains why),
rounded to bf16, the checkpoint's dtype, as Axolotl's _simulate_nf4_roundtrip returns it; then
PEFT's delta, added in fp32, rounded to bf16.
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(os.path.dirname(HERE), "tests", "data_files", "golden")
# adapter fixture, preset, NF4 round trip: None (LoRA), "linear" (QLoRA) or "experts" (QLoRA with
# quantize_moe_experts).
FIXTURES = [("tiny-26b-a4b-lora", "tiny-26b-a4b", None), ("tiny-31b-lora", "tiny-31b", None),
            ("tiny-31b-lora", "tiny-31b", "linear"), ("tiny-26b-a4b-lora", "tiny-26b-a4b", "experts")]
SUFFIX = {None: "-merged", "linear": "-qlora-merged", "experts": "-qlora-experts-merged"}

MERGE = r"""
import sys, json, torch, transformers
from peft import PeftModel
from safetensors import safe_open
from safetensors.torch import save_file
model_dir, adapter, out, nf4, tools = sys.argv[1:]
cfg = transformers.AutoConfig.from_pretrained(model_dir)
base = getattr(transformers, cfg.architectures[0]).from_pretrained(model_dir, dtype=torch.float32)
peft_model = PeftModel.from_pretrained(base, adapter)


def roundtrip(p):
    # bitsandbytes' NF4 round trip of the whole tensor, flattened, back in the checkpoint's bf16.
    import bitsandbytes.functional as F
    flat = p.detach().float().reshape(-1).contiguous()
    q, state = F.quantize_4bit(flat, blocksize=64, compress_statistics=True, quant_type="nf4")
    deq = F.dequantize_4bit(q, state)
    assert deq.dtype == torch.float32
    with torch.no_grad():
        p.copy_(deq.reshape(p.shape).to(torch.bfloat16).float())


if nf4 != "none":
    sys.path.insert(0, tools)
    from gemma4_golden import patch_bnb_cpu_dequantize
    patch_bnb_cpu_dequantize()
adapted, roundtrips = set(), 0
for name, module in peft_model.named_modules():
    if hasattr(module, "lora_A") and "default" in module.lora_A:
        path = name.replace("base_model.model.", "", 1).replace(".base_layer", "")
        if hasattr(module, "parameter_name"):  # ParamWrapper: the experts' own parameter
            adapted.add(path + "." + module.parameter_name)
            param = getattr(module.get_base_layer(), module.parameter_name)
            quantised = nf4 == "experts"
        else:
            adapted.add(path + ".weight")
            param = module.get_base_layer().weight
            quantised = nf4 != "none"
        if quantised:
            roundtrip(param)
            roundtrips += 1
merged = peft_model.merge_and_unload()
state = merged.state_dict()
with safe_open(model_dir + "/model.safetensors", "pt") as f:
    names = set(f.keys())
result = {}
for key in sorted(adapted):
    assert key in names, key
    result[key] = state[key].to(torch.bfloat16).contiguous()
save_file(result, out, metadata={"format": "pt", "tensors": str(len(result)),
                                 "nf4_roundtrips": str(roundtrips)})
print(len(result), roundtrips)
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
        for name, preset, nf4 in FIXTURES:
            seed = seed_of(os.path.join(GOLDEN, name + ".safetensors"))
            model = os.path.join(tmp, name)
            if not os.path.isdir(model):
                subprocess.run([eft, "init-model", "--preset", preset, "--out", model, "--seed",
                                str(seed)], check=True, stdout=subprocess.DEVNULL)
            out = os.path.join(GOLDEN, name + SUFFIX[nf4] + ".safetensors")
            n, r = subprocess.run([args.python, "-c", MERGE, model, os.path.join(GOLDEN, name), out,
                                   nf4 or "none", HERE],
                                  check=True, capture_output=True, text=True).stdout.split()[-2:]
            print(f"{os.path.basename(out)}: {n} merged tensors ({r} through the NF4 round "
                  f"trip), base seed {seed}")


if __name__ == "__main__":
    main()
