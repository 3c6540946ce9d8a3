#!/usr/bin/env python3
"""check_peft_adapter.py: does PEFT load an adapter folder, and what loss does it get?

    python tools/check_peft_adapter.py MODEL_DIR ADAPTER_DIR ROWS.jsonl [--load-in-4bit]

Loads the base checkpoint with transformers (fp32, eager attention), the adapter with
PeftModel.from_pretrained, and checks that PEFT took every tensor of adapter_model.safetensors
as it is: no key of the file left unused, no LoRA parameter of the model left at its
initialisation, every value equal to the file's. Then it runs the packed rows ({"input_ids",
"labels", "position_ids"} per line, as for `eft debug loss`) and prints one JSON line:

    {"loss": L, "base_loss": L0, "tokens": N, "modules": M, "peft": "0.21.2"}

L is the mean cross-entropy over every label != -100 after the shift, over all rows together
(what `eft debug loss` prints); L0 the same without the adapter, so that a reader sees the adapter
matters. Exits 1 with a message when PEFT does not load the adapter exactly. Used by
tools/make_peft_fixtures.py to prove that PEFT reads the adapters eft writes.

With --load-in-4bit the base is a QLoRA base: transformers loads it in NF4 through bitsandbytes
(gemma4_golden.py's loader: bitsandbytes' Linear4bit modules, fp32 compute), and PEFT puts its
lora.bnb.Linear4bit layers on top.
"""
import json
import sys

import torch


def loss_of(model, rows):
    total = sum(sum(1 for l in r["labels"][1:] if l != -100) for r in rows)
    loss = 0.0
    with torch.no_grad():
        for r in rows:
            out = model(input_ids=torch.tensor([r["input_ids"]]),
                        position_ids=torch.tensor([r["position_ids"]]),
                        labels=torch.tensor([r["labels"]]), num_items_in_batch=total,
                        use_cache=False)
            loss += out.loss.item()
    return loss, total


def main():
    args = sys.argv[1:]
    four_bit = "--load-in-4bit" in args
    args = [a for a in args if a != "--load-in-4bit"]
    if len(args) != 3:
        sys.exit(__doc__)
    model_dir, adapter_dir, rows_path = args
    import peft
    import transformers
    from peft import PeftModel
    from safetensors.torch import load_file

    if four_bit:
        from gemma4_golden import load_model

        base, _ = load_model(model_dir, None, torch.float32, "float32")  # in train mode
    else:
        cfg = transformers.AutoConfig.from_pretrained(model_dir)
        cls = getattr(transformers, cfg.architectures[0])
        base = cls.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
        base.eval()
    rows = [json.loads(line) for line in open(rows_path) if line.strip()]
    base_loss, _ = loss_of(base, rows)

    model = PeftModel.from_pretrained(base, adapter_dir)
    if four_bit:
        model.train()  # Linear4bit repacks for a bf16 kernel in eval mode (gemma4_golden.py)
    else:
        model.eval()
    saved = load_file(f"{adapter_dir}/adapter_model.safetensors")
    params = {n.replace(".default", ""): p for n, p in model.named_parameters() if "lora_" in n}
    unused = sorted(set(saved) - set(params))
    missing = sorted(set(params) - set(saved))
    if unused or missing:
        sys.exit(f"PEFT did not load the adapter as saved: keys of the file it has no parameter "
                 f"for: {unused[:5]}; LoRA parameters the file lacks: {missing[:5]}")
    for name, p in params.items():
        if not torch.equal(p.detach().float(), saved[name].float()):
            sys.exit(f"{name}: PEFT's value differs from the file's")
    loss, tokens = loss_of(model, rows)
    print(json.dumps({"loss": loss, "base_loss": base_loss, "tokens": tokens,
                      "modules": len(saved) // 2, "peft": peft.__version__}))


if __name__ == "__main__":
    main()
