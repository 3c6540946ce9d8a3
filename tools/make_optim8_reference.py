#!/usr/bin/env python3
"""make_optim8_reference.py: reference trajectories for eft's 8-bit AdamW (training-math.md 5).

Writes tests/data_files/optim/adamw8.safetensors (read by tests/train/test_opt8.c):

  qmap.signed, qmap.unsigned      the dynamic maps as torchao builds them on this machine (its
                                  CPU kernels: AVX2 or AVX-512 on any recent x86-64 host), taken
                                  from the optimizer state of the run below;
  qmap.signed.default, ...        the same maps built with ATEN_CPU_CAPABILITY=default (torch's
                                  portable kernels), in a child process;
  ao.<k>.<p>.value                torchao AdamW8bit (block_size=256, the config name
                                  adamw_torch_8bit), run for T updates through transformers'
                                  cosine schedule (W=2: the first update runs at lr 0) with weight
                                  decay, after update k: the parameter p;
  ao.<k>.<p>.{m,v}.codes, .scale  its 8-bit state (uint8 codes [n], fp32 scales [n/256]) for a
                                  quantised tensor (n >= 4096 and n % 256 == 0);
  ao.<k>.<p>.{m,v}                its fp32 state for a tensor that is not quantised;
  ao.<T-1>.<p>.{m,v}.dequant      torchao's own dequantisation of the last state.
  The metadata "reference" is JSON: names, shapes, decay flags, hyper-parameters, the learning
  rate each update used (the optimizer's fp32 tensor, widened), the (update, tensor) pairs without
  a gradient, and the largest difference between the compiled kernel (what the Trainer runs) and
  the same function run eagerly.

The gradients and the initial values are not stored: both sides make them from splitmix64 (see
`value()` below and its copy in test_opt8.c). Every value is a multiple of a power of two that
fp32 holds exactly, so they are the same bits on both sides.

bitsandbytes is not run. Its 8-bit AdamW reference is the CUDA kernel (training-math.md 5.3:
decay after the step, sign fix of m, NaN reset); bitsandbytes >= 0.49's CPU backend registers
a different formula (decay before the step, no sign fix, no NaN guard, torch rounding), so a CPU
run would not be a reference. test_opt8.c checks eft's bitsandbytes arithmetic against the
spec's formulas with hand-computed cases instead.

Usage: /work/pyenv/bin/python tools/make_optim8_reference.py [OUT_DIR]
Needs torch, torchao 0.17 (pip install torchao==0.17.0), transformers and a C compiler (torchao
compiles its step with torch.compile); never run by the test suite (the output is committed).
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torchao
import transformers
from safetensors.torch import save_file
from torch import nn
from torchao.optim import AdamW8bit
from transformers import get_scheduler

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data_files", "optim")

PREFIX = "base_model.model.model.language_model.layers.0."
PARAMS = [  # name, shape, decayed (the Trainer's groups, training-math.md 4.3)
    (PREFIX + "self_attn.q_proj.lora_A.default.weight", (16, 256), True),  # 4096: quantised
    (PREFIX + "self_attn.q_proj.lora_B.default.weight", (8, 16), True),    # 128: fp32 state
    (PREFIX + "input_layernorm.weight", (64,), False),                     # fp32, no decay
]
LR, WD, W, T = 1e-2, 0.1, 2, 10
MISSING = [(4, 1)]  # update 4 has no gradient for parameter 1
BLOCK = 256
MASK = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def value(stream, k, p, i, shift):
    """A uniform value in [-1, 1) with 24 bits, times 2^-shift: exact in fp32."""
    h = splitmix64((stream << 56) | (k << 48) | (p << 40) | i)
    return float((h >> 40) - (1 << 23)) * 2.0 ** (-23 - shift)


def grad_shift(k, p, i):
    """Blocks of different magnitude, changing from update to update."""
    return (i // BLOCK + k) % 6


def make_inputs():
    init = []
    for p, (_, shape, _) in enumerate(PARAMS):
        n = int(np.prod(shape))
        init.append(torch.tensor([value(1, 0, p, i, 1) for i in range(n)]).view(shape))
    grads = []
    for k in range(T):
        gk = []
        for p, (_, shape, _) in enumerate(PARAMS):
            if (k, p) in MISSING:
                gk.append(None)
                continue
            n = int(np.prod(shape))
            g = [value(2, k, p, i, grad_shift(k, p, i)) for i in range(n)]
            if p == 0 and k in (0, 1):
                for i in range(3 * BLOCK, 4 * BLOCK):
                    g[i] = 0.0  # a zero block: scale 1e-12 at update 0, decaying m after
            gk.append(torch.tensor(g, dtype=torch.float32).view(shape))
        grads.append(gk)
    return init, grads


def run(init, grads, compiled):
    params = [nn.Parameter(x.clone()) for x in init]
    groups = [
        {"params": [q for q, (_, _, d) in zip(params, PARAMS) if d], "weight_decay": WD},
        {"params": [q for q, (_, _, d) in zip(params, PARAMS) if not d], "weight_decay": 0.0},
    ]
    opt = AdamW8bit(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8, block_size=256,
                    bf16_stochastic_round=False)
    sched = get_scheduler("cosine", opt, num_warmup_steps=W, num_training_steps=T)
    saved_compile = torch.compile
    if not compiled:
        torch.compile = lambda fn, **kw: fn
    lrs, out = [], {}
    try:
        for k in range(T):
            for q, g in zip(params, grads[k]):
                q.grad = None if g is None else g.clone()
            lr_used = float(opt.param_groups[0]["lr"])
            assert lr_used == float(opt.param_groups[1]["lr"])
            opt.step()
            lrs.append(lr_used)
            last = sched.get_last_lr()[0]
            assert float(last) == lr_used  # what the Trainer logs
            sched.step()
            for i, q in enumerate(params):
                out[f"ao.{k}.{i}.value"] = q.detach().clone()
                st = opt.state.get(q, {})
                for key, mom in (("exp_avg", "m"), ("exp_avg_sq", "v")):
                    s = st.get(key)
                    if s is None:
                        s = torch.zeros_like(q)
                    if hasattr(s, "codes"):
                        out[f"ao.{k}.{i}.{mom}.codes"] = s.codes.clone().flatten()
                        out[f"ao.{k}.{i}.{mom}.scale"] = s.scale.clone()
                        if k == T - 1:
                            out[f"ao.{k}.{i}.{mom}.dequant"] = s.dequantize().flatten()
                        out[f"qmap.{'signed' if mom == 'm' else 'unsigned'}"] = s.qmap.clone()
                    else:
                        out[f"ao.{k}.{i}.{mom}"] = s.clone().flatten()
    finally:
        torch.compile = saved_compile
    return lrs, out


def default_cpu_maps():
    """The maps from torch's portable (non-vectorised) CPU kernels, in a child process."""
    code = ("import json; from torchao.optim.quant_utils import create_dynamic_map as c; "
            "print(json.dumps([c(True), c(False)]))")
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    text = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                          capture_output=True, text=True).stdout
    s, u = json.loads(text.strip().splitlines()[-1])
    return torch.tensor(s, dtype=torch.float32), torch.tensor(u, dtype=torch.float32)


def max_rel(a, b):
    return float(((a - b).abs() / b.abs().clamp(min=1e-30)).max())


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    init, grads = make_inputs()
    lrs, out = run(init, grads, compiled=True)
    lrs_eager, eager = run(init, grads, compiled=False)
    assert lrs == lrs_eager
    compile_vs_eager = {"value": 0.0, "codes_differing": 0}
    for key, x in out.items():
        if key.endswith(".value"):
            compile_vs_eager["value"] = max(compile_vs_eager["value"], max_rel(x, eager[key]))
        if key.endswith(".codes"):
            compile_vs_eager["codes_differing"] += int((x != eager[key]).sum())
    s_def, u_def = default_cpu_maps()
    out["qmap.signed.default"] = s_def
    out["qmap.unsigned.default"] = u_def
    ref = {
        "generator": "tools/make_optim8_reference.py",
        "torch": torch.__version__, "torchao": torchao.__version__,
        "transformers": transformers.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "names": [n for n, _, _ in PARAMS], "shapes": [list(s) for _, s, _ in PARAMS],
        "decays": [d for _, _, d in PARAMS],
        "lr": LR, "weight_decay": WD, "betas": [0.9, 0.999], "eps": 1e-8, "block_size": BLOCK,
        "schedule": "cosine", "warmup": W, "updates": T, "lrs": lrs,
        "missing": [list(m) for m in MISSING], "compiled_vs_eager": compile_vs_eager,
    }
    save_file({k: v.contiguous() for k, v in out.items()},
              os.path.join(OUT, "adamw8.safetensors"), metadata={"reference": json.dumps(ref)})
    print("wrote", os.path.join(OUT, "adamw8.safetensors"), json.dumps(compile_vs_eager))


if __name__ == "__main__":
    main()
