#!/usr/bin/env python3
"""make_safetensors_fixture.py: writes the tiny safetensors file that eft's writer must match.

tests/io/test_safetensors.c builds the same tensors with st_writer and compares the bytes with
this file, and reads this file back; the values come from the same formulas on both sides
(small multiples of 1/4, exact in every float type). Run with the project's venv:

    /work/pyenv/bin/python tools/make_safetensors_fixture.py [--fuzz-corpus]

Writes tests/data_files/safetensors/python_small.safetensors (a few hundred bytes), and with
--fuzz-corpus also the seeds of fuzz/corpus/safetensors/: that file, and hand-made headers that
save_file never writes but readers must accept (any entry order, white space, escapes, unknown
fields, zero-size tensors, null metadata).
"""
import os
import struct
import sys

import torch
from safetensors.torch import save_file


def real(n):
    """value(i) = ((7 i) mod 11 - 5) / 4, the formula the C test uses."""
    return torch.tensor([((7 * i) % 11 - 5) / 4 for i in range(n)], dtype=torch.float64)


def ints(n):
    """value(i) = (5 i) mod 13 - 6."""
    return torch.tensor([(5 * i) % 13 - 6 for i in range(n)], dtype=torch.int64)


def raw(header, data_len):
    """A file from a header string: length, header, data bytes 0, 1, 2, ..."""
    h = header.encode("utf-8")
    return struct.pack("<Q", len(h)) + h + bytes(i % 251 for i in range(data_len))


def write_corpus(folder, fixture):
    os.makedirs(folder, exist_ok=True)
    seeds = {
        "python_small.safetensors": open(fixture, "rb").read(),
        "empty.safetensors": raw("{}      ", 0),
        "reversed.safetensors": raw(
            '{"b":{"dtype":"BF16","shape":[4],"data_offsets":[16,24]},'
            '"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}} \n\t', 24),
        "zero_size.safetensors": raw(
            '{"__metadata__":{"format":"pt","step":"12"},'
            '"z":{"dtype":"I64","shape":[0,5],"data_offsets":[0,0]},'
            '"s":{"dtype":"I32","shape":[],"data_offsets":[0,4]},'
            '"m":{"dtype":"BOOL","shape":[1,1,1,1,1,1,1,2],"data_offsets":[4,6]},'
            '"e":{"dtype":"F16","shape":[0],"data_offsets":[6,6]}}', 6),
        "escapes.safetensors": raw(
            '{"__metadata__":null,"\\u00e9\\ud83d\\ude00\\n\\\"x":{"extra":[[{"k":1}]],'
            '"dtype":"U8","shape":[3],"data_offsets":[0,3]},'
            '"i8":{"data_offsets":[3,5],"shape":[2],"dtype":"I8"}}', 5),
    }
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    print(folder, len(seeds), "seeds,", sum(len(d) for d in seeds.values()), "bytes")


def main():
    tensors = {
        "layer.w_bf16": real(6).reshape(2, 3).to(torch.bfloat16),
        "layer.w_f16": real(3).to(torch.float16),
        "layer.w_f32": real(4).reshape(2, 2).to(torch.float32),
        "scalar": real(1).reshape(()).to(torch.float32),
        "empty": real(0).reshape(0, 4).to(torch.float32),
        "ids": ints(3).to(torch.int64),
        "counts": ints(2).to(torch.int32),
        "bytes": (ints(5) + 6).to(torch.uint8),
        "small": ints(3).to(torch.int8),
        "mask": (ints(4) > 0),
        "\u00e9t\u00e9.w": real(2).to(torch.float32),  # a UTF-8 name: "été.w"
    }
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    out = os.path.join(root, "tests", "data_files", "safetensors", "python_small.safetensors")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    # One metadata key: Python writes several in hash order, so more would not be reproducible.
    save_file(tensors, out, metadata={"format": "pt"})
    print(out, os.path.getsize(out), "bytes")
    if "--fuzz-corpus" in sys.argv[1:]:
        write_corpus(os.path.join(root, "fuzz", "corpus", "safetensors"), out)


if __name__ == "__main__":
    main()
