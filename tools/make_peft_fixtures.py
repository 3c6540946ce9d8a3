#!/usr/bin/env python3
"""make_peft_fixtures.py: regenerates the LoRA fixtures of tests/peft from PEFT and transformers.

    tools/make_peft_fixtures.py BUILD_DIR [--python PYTHON] [--only NAME ...]
        (PYTHON: torch, transformers 5.x, peft, safetensors)

Two kinds of fixture, both on tiny checkpoints that `eft init-model --seed S` rebuilds exactly:

1. PEFT's adapters, and the reference they give (tests/data_files/golden/<name>-lora/ and
   <name>-lora.safetensors). PEFT wraps the checkpoint eft wrote (get_peft_model), its lora_B
   matrices are set to random values (PEFT starts them at zero, which would hide every mistake
   in B's layout, scale or gradient), and save_pretrained writes the folder. tools/gemma4_golden.py
   --adapter then records transformers' loss, logits and the gradients of every lora_A / lora_B.
   tiny-31b targets the Axolotl examples' regex (wrapper layout, k_eq_v layers without v_proj);
   tiny-e2b a list of names that includes the per-layer-embedding linears (KV-shared layers
   without k/v projections); tiny-26b-a4b the regex plus the expert tensors
   (target_parameters). As in make_golden.py, a seed is kept only when transformers' fp32
   gradients are within 2e-5 of its fp64 ones, so that the C test's tolerances measure eft.

2. QLoRA references (tests/data_files/golden/<name>.safetensors): a PEFT adapter of kind 1 on a
   base checkpoint of the same preset (the first well-conditioned seed), loaded in 4-bit NF4 by transformers and
   bitsandbytes (gemma4_golden.py --load-in-4bit: bitsandbytes' own Linear4bit modules with fp32
   compute, or its dequantisation to bf16; tiny-26b-a4b-qlora-experts also has the expert tensors
   quantised whole as Axolotl's quantize_moe_experts does, --quantize-moe-experts). The
   conditioning check compares with the same dequantised weights in fp64.

3. eft's adapters, read by PEFT (tests/data_files/peft/<name>/). `eft debug init-adapter` writes
   an adapter for the config beside it (peft_init_lora_weights: false, so B is random), and
   tools/check_peft_adapter.py loads it with PeftModel.from_pretrained, checks every value was
   taken as saved, and records PEFT's loss on the golden rows in peft_loss.json. The C test
   (tests/peft/test_peft_io_compat.c) checks eft's loss with the same adapter equals it.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from make_golden import worst_rel  # the conditioning measure: worst relative L2 over grad.*

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(ROOT, "tests", "data_files", "golden")
PEFT_DIR = os.path.join(ROOT, "tests", "data_files", "peft")
ROWS = os.path.join(GOLDEN, "rows.jsonl")

AXOLOTL_REGEX = (r"model.language_model.layers.[\d]+.(_checkpoint_wrapped_module.)?"
                 r"(mlp|self_attn).(up|down|gate|q|k|v|o)_proj")
EXPERTS = ["experts.gate_up_proj", "experts.down_proj"]
GOLDEN_FIXTURES = [
    # name, preset, init-model flags, target_modules, r, lora_alpha, std of the random lora_B,
    # target_parameters. (E2B's fp32 gradients are noisier: with B ~ N(0, 0.05) no seed in 7..39
    # is within 2e-5 of fp64; with 0.01 the adapter still moves the weights by about a third of
    # their size.)
    ("tiny-31b-lora", "tiny-31b", [], AXOLOTL_REGEX, 4, 8, 0.05, None),
    ("tiny-e2b-lora", "tiny-e2b", [],
     ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
      "per_layer_input_gate", "per_layer_projection", "per_layer_model_projection"], 2, 6, 0.01,
     None),
    # The Axolotl MoE examples' adapter: attention and dense MLP by regex, the experts by
    # target_parameters (PEFT's ParamWrapper: nested, strided lora_B), all-linear aside.
    ("tiny-26b-a4b-lora", "tiny-26b-a4b", [], AXOLOTL_REGEX, 4, 8, 0.05, EXPERTS),
]
# QLoRA: name, the kind-1 fixture whose base (seed) and adapter it reuses, bnb compute dtype,
# quantize_moe_experts (the 3-D expert tensors in NF4 too, with their LoRA by target_parameters).
QLORA_FIXTURES = [
    ("tiny-31b-qlora-bf16", "tiny-31b-lora", "bfloat16", False),
    ("tiny-e2b-qlora", "tiny-e2b-lora", "float32", False),
    ("tiny-26b-a4b-qlora-experts", "tiny-26b-a4b-lora", "bfloat16", True),
]
# eft's adapter on the text-only layout (Gemma4ForCausalLM, "model.layers.N..."), seed of the
# checkpoint, and the config eft builds the adapter from (its seed draws the adapter).
COMPAT_FIXTURES = [("tiny-e2b-text-eft", "tiny-e2b", ["--text-only"], 11),
                   ("tiny-26b-a4b-eft", "tiny-26b-a4b", [], 11)]
# eft's QLoRA adapter: `eft train` of the config.yaml template beside it, on this checkpoint; PEFT
# reads it on the base loaded in 4-bit by bitsandbytes (check_peft_adapter.py --load-in-4bit).
QLORA_COMPAT_FIXTURES = [("tiny-31b-qlora-eft", "tiny-31b", ["--vocab-size", "384"], 3)]

# A PEFT adapter made by a child process, so that each fixture's torch state starts fresh.
MAKE_ADAPTER = r"""
import json, sys, torch, transformers
from peft import LoraConfig, get_peft_model
model_dir, out, targets, r, alpha, b_std, seed, params = sys.argv[1:]
torch.manual_seed(int(seed))
cfg = transformers.AutoConfig.from_pretrained(model_dir)
model = getattr(transformers, cfg.architectures[0]).from_pretrained(model_dir, dtype=torch.float32)
targets = json.loads(targets)
model = get_peft_model(model, LoraConfig(r=int(r), lora_alpha=int(alpha), target_modules=targets,
                                         target_parameters=json.loads(params),
                                         lora_dropout=0.0, task_type="CAUSAL_LM"))
with torch.no_grad():
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.copy_(torch.randn(p.shape) * float(b_std))
model.peft_config["default"].base_model_name_or_path = "eft init-model seed " + seed
model.save_pretrained(out)
"""


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          **kw)


def make_golden(eft, python, tmp, only):
    golden = os.path.join(HERE, "gemma4_golden.py")
    for name, preset, flags, targets, r, alpha, b_std, params in GOLDEN_FIXTURES:
        if only and name not in only:
            continue
        for seed in range(7, 40):
            model = os.path.join(tmp, f"{name}-{seed}")
            adapter = model + "-adapter"
            run([eft, "init-model", "--preset", preset, "--out", model, "--seed", str(seed)] + flags)
            run([python, "-c", MAKE_ADAPTER, model, adapter, json.dumps(targets), str(r),
                 str(alpha), str(b_std), str(seed), json.dumps(params)])
            f32, f64 = model + ".f32.safetensors", model + ".f64.safetensors"
            base = [python, golden, "--model", model, "--adapter", adapter, "--input", ROWS]
            run(base + ["--out", f32, "--meta", f"seed={seed}"])
            run(base + ["--out", f64, "--float64"])
            w = worst_rel(f32, f64)
            print(f"{name}: seed {seed}: transformers fp32 vs fp64 {w:.2e}", flush=True)
            if w < 2e-5:
                dest = os.path.join(GOLDEN, name)
                shutil.rmtree(dest, ignore_errors=True)
                os.makedirs(dest)
                for f in ("adapter_config.json", "adapter_model.safetensors"):
                    shutil.copy(os.path.join(adapter, f), dest)
                os.replace(f32, os.path.join(GOLDEN, name + ".safetensors"))
                break
        else:
            sys.exit(f"{name}: no well-conditioned seed in 7..39")


def make_qlora(eft, python, tmp, only):
    golden = os.path.join(HERE, "gemma4_golden.py")
    fixtures = {f[0]: f for f in GOLDEN_FIXTURES}
    for name, lora, compute, experts in QLORA_FIXTURES:
        if only and name not in only:
            continue
        preset, flags = fixtures[lora][1], fixtures[lora][2]
        # The adapter does not depend on the base's values: any base seed fits it. As in
        # make_golden, keep the first seed whose fp32 reference is within 2e-5 of fp64.
        for seed in range(7, 40):
            model = os.path.join(tmp, f"{name}-{seed}")
            run([eft, "init-model", "--preset", preset, "--out", model, "--seed", str(seed)] +
                flags)
            f32, f64 = model + ".f32.safetensors", model + ".f64.safetensors"
            base = [python, golden, "--model", model, "--adapter", os.path.join(GOLDEN, lora),
                    "--input", ROWS, "--load-in-4bit", compute]
            if experts:
                base.append("--quantize-moe-experts")
            run(base + ["--out", f32, "--meta", f"seed={seed}", "--meta", f"adapter={lora}"])
            run(base + ["--out", f64, "--float64"])
            w = worst_rel(f32, f64)
            print(f"{name}: seed {seed}: transformers fp32 vs fp64 {w:.2e}", flush=True)
            if w < 2e-5:
                os.replace(f32, os.path.join(GOLDEN, name + ".safetensors"))
                break
        else:
            sys.exit(f"{name}: no well-conditioned seed in 7..39")


def fill_template(path, model, out):
    with open(path) as f:
        text = f.read()
    return (text.replace("@MODEL@", model).replace("@OUT@", out)
            .replace("@EXAMPLES@", os.path.join(ROOT, "examples")))


def make_qlora_compat(eft, python, tmp, only):
    check = os.path.join(HERE, "check_peft_adapter.py")
    for name, preset, flags, seed in QLORA_COMPAT_FIXTURES:
        if only and name not in only:
            continue
        dest = os.path.join(PEFT_DIR, name)
        work = os.path.join(tmp, name)
        model = os.path.join(work, "model")
        run([eft, "init-model", "--preset", preset, "--out", model, "--seed", str(seed)] + flags)
        config = os.path.join(work, "config.yaml")
        with open(config, "w") as f:
            f.write(fill_template(os.path.join(dest, "config.yaml"), model, work))
        run([eft, "train", config], env=dict(os.environ, EFT_NO_TTY="1"))
        adapter = os.path.join(dest, "adapter")
        shutil.rmtree(adapter, ignore_errors=True)
        os.makedirs(adapter)
        for f in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copy(os.path.join(work, "run", f), adapter)
        out = subprocess.run([python, check, model, adapter, ROWS, "--load-in-4bit"], check=True,
                             capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        result.update({"preset": preset, "flags": flags, "seed": seed, "load_in_4bit": "float32"})
        with open(os.path.join(dest, "peft_loss.json"), "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print(f"{name}: PEFT on bitsandbytes loss {result['loss']:.9g} "
              f"(base {result['base_loss']:.9g})")


def make_compat(eft, python, tmp, only):
    check = os.path.join(HERE, "check_peft_adapter.py")
    for name, preset, flags, seed in COMPAT_FIXTURES:
        if only and name not in only:
            continue
        dest = os.path.join(PEFT_DIR, name)
        config = os.path.join(dest, "config.yaml")  # committed: the run the adapter starts
        model = os.path.join(tmp, name)
        run([eft, "init-model", "--preset", preset, "--out", model, "--seed", str(seed)] + flags)
        adapter = os.path.join(dest, "adapter")
        shutil.rmtree(adapter, ignore_errors=True)
        run([eft, "debug", "init-adapter", "--model", model, "--config", config, "--out", adapter])
        out = subprocess.run([python, check, model, adapter, ROWS], check=True,
                             capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        result.update({"preset": preset, "flags": flags, "seed": seed})
        with open(os.path.join(dest, "peft_loss.json"), "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print(f"{name}: PEFT loss {result['loss']:.9g} (base {result['base_loss']:.9g})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--only", action="append", default=[], help="regenerate this fixture only")
    args = ap.parse_args()
    eft = os.path.join(os.path.abspath(args.build), "eft")
    with tempfile.TemporaryDirectory() as tmp:
        make_golden(eft, args.python, tmp, args.only)
        make_qlora(eft, args.python, tmp, args.only)
        make_compat(eft, args.python, tmp, args.only)
        make_qlora_compat(eft, args.python, tmp, args.only)


if __name__ == "__main__":
    main()
