#!/usr/bin/env python3
"""gemma4_golden.py: reference loss, logits and gradients from Hugging Face transformers.

Loads a (tiny) Gemma 4 checkpoint in fp32 with eager attention, runs packed rows of
{"input_ids", "labels", "position_ids"} (documents restart their position ids at 0, as eft and
Axolotl pack them; transformers then builds the block-diagonal mask from the position ids), and
writes one safetensors file with:

  loss         F32 [1]        mean CE over every label != -100 after the shift, all rows together
  tokens       I64 [1]        that count
  row_lengths  I64 [R]        tokens of each row
  logits       F32 [R, T, V]  soft-capped logits (rows padded to the longest with zeros)
  grad.<hf parameter name>  F32  d loss / d parameter, for every parameter with a gradient

With --adapter DIR (a PEFT LoRA folder) the base model is frozen and the gradients are those of
the adapter's lora_A / lora_B tensors, named as in adapter_model.safetensors.

Used by tests/model and tests/peft (through tools/make_golden.py and make_peft_fixtures.py): the
C tests compare eft against these files. Needs torch, transformers (5.x), safetensors and peft
from PyPI; eft itself never runs Python.

    python tools/gemma4_golden.py --model DIR --input rows.jsonl --out golden.safetensors
"""
import argparse
import json
import re

import torch
from safetensors.torch import save_file


def load_model(model_dir, adapter_dir, dtype=torch.float32):
    import transformers
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(model_dir)
    # The class config.json names: Gemma4ForConditionalGeneration (the releases' wrapper),
    # Gemma4UnifiedForConditionalGeneration (12B), Gemma4ForCausalLM (text only).
    cls = getattr(transformers, cfg.architectures[0])
    # eager experts: the per-expert loop (grouped_mm has no float64); the reference order of the
    # experts' sums, which eft follows.
    model = cls.from_pretrained(model_dir, dtype=dtype, attn_implementation="eager",
                                experts_implementation="eager")
    model.eval()  # no dropout anywhere in Gemma 4's text model; eval keeps it explicit
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
        model.eval()
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True, help="JSONL of packed rows")
    ap.add_argument("--adapter", help="PEFT LoRA folder; gradients are then the adapter's")
    ap.add_argument("--out", required=True)
    ap.add_argument("--float64", action="store_true",
                    help="run in fp64 (the exact reference used to check a fixture's conditioning)")
    ap.add_argument("--meta", action="append", default=[], help="KEY=VALUE stored in the file")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = load_model(args.model, args.adapter, torch.float64 if args.float64 else torch.float32)
    rows = [json.loads(line) for line in open(args.input) if line.strip()]

    # Count the trained targets of every row after the shift (label t+1 scores logit t).
    total = sum(sum(1 for l in r["labels"][1:] if l != -100) for r in rows)
    vocab = model.config.get_text_config().vocab_size
    tmax = max(len(r["input_ids"]) for r in rows)
    logits_all = torch.zeros(len(rows), tmax, vocab, dtype=torch.float64)

    loss_sum = 0.0
    for i, r in enumerate(rows):
        ids = torch.tensor([r["input_ids"]])
        labels = torch.tensor([r["labels"]])
        pos = torch.tensor([r["position_ids"]])
        # num_items_in_batch makes the loss a sum over this row divided by the total count of all
        # rows, so the gradients accumulated over the rows are those of the mean over all rows.
        # use_cache=False as in training: with a cache, transformers stops finding packed
        # documents from the position ids and lets them attend to each other.
        out = model(input_ids=ids, position_ids=pos, labels=labels, num_items_in_batch=total,
                    use_cache=False)
        out.loss.backward()
        loss_sum += out.loss.item()
        logits_all[i, : ids.shape[1]] = out.logits[0].detach()

    tensors = {
        "loss": torch.tensor([loss_sum], dtype=torch.float32),
        "tokens": torch.tensor([total], dtype=torch.int64),
        "row_lengths": torch.tensor([len(r["input_ids"]) for r in rows], dtype=torch.int64),
        "logits": logits_all.float().contiguous(),
    }
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        if args.adapter:
            # PEFT's parameter "….q_proj.lora_A.default.weight" is "….q_proj.lora_A.weight" in
            # adapter_model.safetensors: the file carries no adapter name.
            name = re.sub(r"\.(lora_[AB])\.default\.", r".\1.", name)
        tensors["grad." + name] = p.grad.detach().float().contiguous()

    import transformers

    meta = {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
            "model_class": type(model).__name__,
            "dtype": "float64" if args.float64 else "float32"}
    meta.update(kv.split("=", 1) for kv in args.meta)
    save_file(tensors, args.out, metadata=meta)
    print(json.dumps({"loss": loss_sum, "tokens": total, "grads": len(tensors) - 4}))


if __name__ == "__main__":
    main()
