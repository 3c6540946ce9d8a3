#!/usr/bin/env python3
"""make_nf4_reference.py: NF4 tensors exactly as bitsandbytes makes them, for tests/peft/test_nf4.c.

Writes tests/data_files/nf4/reference.safetensors with the signed 8-bit dynamic map and, for each
case below, what bitsandbytes.functional.quantize_4bit(w, blocksize=64, compress_statistics=True,
quant_type="nf4") returns on the CPU and what dequantize_4bit gives back:

  map                      F32 [256]   the dynamic map of the absmax quantisation (state2.code)
  <case>.input             BF16 or F32 [rows, cols]
  <case>.absmax            F32 [blocks]   first-stage absmax per block of 64 (before double quant)
  <case>.codes             U8 [ceil(n/2)]  packed 4-bit codes (quantize_4bit's first output)
  <case>.qabsmax           U8 [blocks]     state.absmax
  <case>.absmax2           F32 [groups]    state.state2.absmax (one per 256 blocks)
  <case>.offset            F32 [1]         state.offset (torch's mean of the absmax values)
  <case>.dequant_f32       F32 [rows, cols] dequantize_4bit to float32
  <case>.dequant_bf16      BF16 [rows, cols] dequantize_4bit to bfloat16

and one case of the absmax quantisation alone (bitsandbytes' quantize_blockwise with the dynamic
map in blocks of 256, the kernel of step 3), on values chosen where its CPU kernel's 65536-point
grid gives another index than the nearest map entry (near zero, where the map is finer):

  grid.c                   F32 [1024]   the values (absmax - offset, with offset 0)
  grid.qabsmax             U8 [1024]
  grid.absmax2             F32 [4]

The first-stage absmax is not returned by quantize_4bit: it is recomputed by calling bitsandbytes'
own quantize_4bit kernel (torch.ops.bitsandbytes.quantize_4bit), which returns it, and the script
checks that kernel's codes are the ones quantize_4bit returned.

Two facts of bitsandbytes 0.50.2 on the CPU this script checks and states in the metadata:
  - dequantize_4bit's AVX-512 kernel indexes the absmax per row (row length / 64 blocks per
    row), which is wrong when the row length is a multiple of 16 but not of 64 (bitsandbytes'
    CUDA kernels and its own reference formula, backends/default, use flat blocks of 64). The
    cases here avoid those shapes, and the script asserts that dequantize_4bit equals the
    flat-block formula on every case, so the references are both "what bitsandbytes returns" and
    "the formula".
  - state.offset is torch's float32 mean, whose last bit depends on torch's summation order
    (vector width, thread count, device). eft takes the correctly rounded mean; the metadata
    records for each case whether the two agree.

Usage: /work/pyenv/bin/python tools/make_nf4_reference.py [OUT_DIR]
Needs torch and bitsandbytes (>= 0.49, CPU); never run by the test suite (the output is committed).
"""
import json
import os
import sys

import numpy as np
import torch
import bitsandbytes
import bitsandbytes.functional as F
from bitsandbytes.backends.utils import _get_4bit_code
from safetensors.torch import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data_files", "nf4")


def case_inputs():
    g = torch.Generator().manual_seed(1234)

    def normal(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    out = {}
    # A tiny model's projection: 6 blocks, one group.
    out["proj_bf16"] = normal(24, 18).to(torch.bfloat16)
    # 250 values: the last block holds 58.
    out["partial_bf16"] = normal(5, 50).to(torch.bfloat16)
    # 21 values: one partial block, an odd count (the last byte's low nibble is padding).
    out["odd_f32"] = normal(3, 7, std=1.0)
    # 264 blocks: two groups of the double quantisation, the second of 8 blocks.
    out["groups_bf16"] = normal(64, 264).to(torch.bfloat16)
    # Rows of 128 (a multiple of 64: bitsandbytes' AVX-512 dequantisation path) with heavy tails.
    t = normal(40, 128) * torch.exp(normal(40, 128, std=1.0))
    out["rows64_bf16"] = t.to(torch.bfloat16)
    # Special blocks: all zeros (full and last partial block), an outlier, values on the NF4
    # midpoints and on the codebook entries (ties), tiny and huge magnitudes.
    code = _get_4bit_code("nf4", "cpu")
    mids = (code[:-1] + code[1:]) / 2
    x = normal(1200, std=1.0)
    x[0:64] = 0
    x[128] = 50.0
    x[192:256] = 0
    x[192] = 1.0
    x[193:193 + 15] = mids
    x[208:208 + 16] = code
    x[224:239] = -mids
    x[256:320] *= 1e-30
    x[320:384] *= 1e30
    x[1152:1200] = 0  # the last (partial) block
    out["special_f32"] = x.reshape(40, 30)
    return out


def flat_dequant(codes, absmax, n, shape, dtype):
    """bitsandbytes' reference formula: code[q] * absmax[i // 64] in fp32, then cast."""
    code = _get_4bit_code("nf4", "cpu")
    q = codes.reshape(-1)
    idx = torch.empty(q.numel() * 2, dtype=torch.long)
    idx[0::2] = (q >> 4).long()
    idx[1::2] = (q & 15).long()
    vals = code[idx[:n]] * absmax.repeat_interleave(64)[:n]
    return vals.reshape(shape).to(dtype)


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    tensors = {"map": F.create_dynamic_map().contiguous()}
    meta = {}
    for name, w in case_inputs().items():
        shape, n = tuple(w.shape), w.numel()
        q, st = F.quantize_4bit(w, blocksize=64, compress_statistics=True, quant_type="nf4")
        codes, absmax = torch.ops.bitsandbytes.quantize_4bit.default(w, 64, "nf4", torch.uint8)
        assert torch.equal(codes.reshape(-1), q.reshape(-1)), name
        assert torch.equal(st.state2.code, tensors["map"]), name
        assert st.state2.blocksize == 256 and st.blocksize == 64, name
        absmax_deq = F.dequantize_blockwise(st.absmax, st.state2) + st.offset
        deq = {}
        for label, dt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
            st.dtype = dt
            d = F.dequantize_4bit(q, st)
            assert torch.equal(d.view(torch.int16 if dt == torch.bfloat16 else torch.int32),
                               flat_dequant(q, absmax_deq, n, shape, dt)
                               .view(torch.int16 if dt == torch.bfloat16 else torch.int32)), \
                (name, label)
            deq[label] = d.contiguous()
        # bf16 output is the fp32 output rounded to nearest even.
        assert torch.equal(deq["f32"].to(torch.bfloat16), deq["bf16"]), name
        mean64 = np.float32(absmax.double().sum().item() / absmax.numel())
        offset = np.float32(st.offset.item())
        meta[name] = {"shape": list(shape), "offset_is_correctly_rounded": bool(mean64 == offset),
                      "offset_ulps": int(abs(int(mean64.view(np.int32)) -
                                             int(offset.view(np.int32))))}
        tensors.update({
            f"{name}.input": w.contiguous(),
            f"{name}.absmax": absmax.contiguous(),
            f"{name}.codes": q.reshape(-1).contiguous(),
            f"{name}.qabsmax": st.absmax.contiguous(),
            f"{name}.absmax2": st.state2.absmax.contiguous(),
            f"{name}.offset": st.offset.reshape(1).contiguous(),
            f"{name}.dequant_f32": deq["f32"],
            f"{name}.dequant_bf16": deq["bf16"],
        })
        print(f"{name}: {shape}, {absmax.numel()} blocks, offset "
              f"{'= correctly rounded mean' if mean64 == offset else 'differs by %d ulp' % meta[name]['offset_ulps']}")
    # Step 3 alone, on values near zero (and on map midpoints), where grid and nearest differ.
    g = torch.Generator().manual_seed(99)
    c = torch.randn(1024, generator=g)
    c[0] = 4.0  # group scale 4 (and likewise below)
    c[256] = -3.0
    c[512] = 2.5
    c[768] = 1.0
    code = tensors["map"]
    c[1:100] = torch.logspace(-8, -2, 99) * torch.where(torch.arange(99) % 2 == 0, 1.0, -1.0) * 4
    c[300:400] = (code[100:200] + code[101:201]) / 2 * 3.0
    c[600:700] = torch.linspace(-1e-4, 1e-4, 100) * 2.5
    qc, st2 = F.quantize_blockwise(c, code=code, blocksize=256)
    near = (c.reshape(4, 256) / st2.absmax[:, None]).reshape(-1)
    near = (near[:, None] - code[None, :]).abs().argmin(1).to(torch.uint8)
    differ = int((near != qc).sum())
    print(f"grid: {differ} of 1024 indices differ from the nearest map entry")
    assert differ > 0
    tensors.update({"grid.c": c.contiguous(), "grid.qabsmax": qc.contiguous(),
                    "grid.absmax2": st2.absmax.contiguous()})
    meta["grid"] = {"differ_from_nearest": differ}
    info = {"bitsandbytes": bitsandbytes.__version__, "torch": torch.__version__.split("+")[0],
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cases": meta}
    save_file(tensors, os.path.join(OUT, "reference.safetensors"),
              metadata={"reference": json.dumps(info)})


if __name__ == "__main__":
    main()
