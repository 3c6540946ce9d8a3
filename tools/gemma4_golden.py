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

With --load-in-4bit COMPUTE (QLoRA; needs --adapter) transformers loads the base with
BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True),
so bitsandbytes quantises every nn.Linear of the text model to NF4:
  float32   the model runs through bitsandbytes' own Linear4bit modules on the CPU (fp32
            activations, so bitsandbytes dequantises to the exact fp32 product), PEFT's
            lora.bnb.Linear4bit on top. The model is in train mode: in eval mode Linear4bit
            repacks its weight for a bf16 CPU inference kernel when its input needs no gradient.
  bfloat16  what Axolotl's bf16 QLoRA multiplies by: each quantised weight replaced by
            bitsandbytes' dequantize_4bit to bfloat16, in an fp32 model (bitsandbytes cannot run
            bf16 weights under fp32 activations itself: Linear4bit follows the input's dtype).
With --quantize-moe-experts (and --load-in-4bit) the 3-D MoE expert tensors are NF4 too, as
Axolotl's quantize_moe_experts makes them: each whole tensor flattened, in fp32, through
bitsandbytes.functional.quantize_4bit(blocksize=64, quant_type="nf4", compress_statistics=True),
and replaced by its dequantize_4bit to the compute dtype (what Axolotl's parametrization hands the
experts' forward).
With --float64 the weights are bitsandbytes' dequantised values (fp32 or bf16-rounded) in an fp64
model: the exact reference of the same function. The metadata records "nf4_modules", the number
of Linear4bit modules the forward ran, plus the NF4 expert tensors of the expert modules it ran.

bitsandbytes 0.50.2's CPU dequantize_4bit (its AVX-512 path) indexes the absmax per row, which is
wrong when a row's length is a multiple of 16 but not of 64 (the tiny presets' 16-wide rows);
--load-in-4bit replaces that kernel by bitsandbytes' own flat-block formula (backends/default,
the formula of its CUDA kernels) before loading.

Used by tests/model and tests/peft (through tools/make_golden.py and make_peft_fixtures.py): the
C tests compare eft against these files. Needs torch, transformers (5.x), safetensors and peft
from PyPI; eft itself never runs Python.

    python tools/gemma4_golden.py --model DIR --input rows.jsonl --out golden.safetensors
"""
import argparse
import copy
import json
import re

import torch
from safetensors.torch import save_file


def model_class(model_dir):
    import transformers
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(model_dir)
    # The class config.json names: Gemma4ForConditionalGeneration (the releases' wrapper),
    # Gemma4UnifiedForConditionalGeneration (12B), Gemma4ForCausalLM (text only).
    return getattr(transformers, cfg.architectures[0])


def patch_bnb_cpu_dequantize():
    """Replaces bitsandbytes' CPU dequantize_4bit by its flat-block reference formula."""
    import bitsandbytes  # noqa: F401  (registers the kernels first)
    from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
    from bitsandbytes.backends.utils import _get_4bit_code

    compute = getattr(_dequantize_4bit_compute, "__wrapped__", _dequantize_4bit_compute)

    def flat(A, absmax, blocksize, quant_type, shape, dtype):
        if A.dtype != torch.uint8:
            A = A.view(torch.uint8)
        code = _get_4bit_code(quant_type, A.device)
        return compute(A.reshape(-1), absmax, code, blocksize, shape, dtype)

    torch.library.register_kernel("bitsandbytes::dequantize_4bit", "cpu", flat)


def load_4bit(model_dir):
    from transformers import BitsAndBytesConfig

    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                           bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32)
    return model_class(model_dir).from_pretrained(model_dir, quantization_config=q,
                                                  dtype=torch.float32, device_map="cpu",
                                                  attn_implementation="eager",
                                                  experts_implementation="eager")


def dequantized_model(model_dir, compute, dtype):
    """A plain model whose quantised linears hold bitsandbytes' dequantised values."""
    import bitsandbytes
    import bitsandbytes.functional as F

    values = {}
    for name, mod in load_4bit(model_dir).named_modules():
        if isinstance(mod, bitsandbytes.nn.Linear4bit):
            state = copy.copy(mod.weight.quant_state)
            state.dtype = torch.bfloat16 if compute == "bfloat16" else torch.float32
            values[name] = F.dequantize_4bit(mod.weight.data, state).float()
    model = model_class(model_dir).from_pretrained(model_dir, dtype=dtype,
                                                   attn_implementation="eager",
                                                   experts_implementation="eager")
    with torch.no_grad():
        for name, v in values.items():
            model.get_submodule(name).weight.copy_(v.to(dtype))
    return model, set(values)


def quantize_experts(model, compute):
    """Axolotl's quantize_moe_experts on a plain model: every 3-D expert parameter replaced by
    bitsandbytes' quantise -> dequantise of the whole tensor, flattened. Returns {parameter name:
    its module's name}."""
    import bitsandbytes.functional as F

    dtype = torch.bfloat16 if compute == "bfloat16" else torch.float32
    params = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim != 3 or "experts" not in name:
                continue
            flat = p.detach().to(torch.float32).reshape(-1).contiguous()
            q, state = F.quantize_4bit(flat, blocksize=64, compress_statistics=True,
                                       quant_type="nf4")
            state = copy.copy(state)
            state.dtype = dtype
            p.copy_(F.dequantize_4bit(q, state).to(p.dtype).reshape(p.shape))
            params[name] = name.rsplit(".", 1)[0]
    return params


def count_calls(model, names, experts=None):
    """The set of modules among `names`, and of expert parameters among `experts` ({parameter:
    module}), the forward runs (filled as it runs)."""
    used = set()
    for name, mod in model.named_modules():
        if name in names:
            mod.register_forward_hook(lambda m, i, o, n=name: used.add(n))
    for param, module in (experts or {}).items():
        model.get_submodule(module).register_forward_hook(lambda m, i, o, n=param: used.add(n))
    return used


def load_model(model_dir, adapter_dir, dtype=torch.float32, load_in_4bit=None, experts=False):
    """The model (with its adapter), and the set the forward fills with the quantised linears
    (and expert tensors) it runs."""
    used = set()
    if load_in_4bit:
        patch_bnb_cpu_dequantize()
        if load_in_4bit == "float32" and dtype == torch.float32:
            model = load_4bit(model_dir)
            names = {n for n, m in model.named_modules() if type(m).__name__ == "Linear4bit"}
        else:
            model, names = dequantized_model(model_dir, load_in_4bit, dtype)
        nf4_experts = quantize_experts(model, load_in_4bit) if experts else {}
        used = count_calls(model, names, nf4_experts)
    else:
        # eager experts: the per-expert loop (grouped_mm has no float64), the reference order of
        # the experts' sums, which eft follows.
        model = model_class(model_dir).from_pretrained(model_dir, dtype=dtype,
                                                       attn_implementation="eager",
                                                       experts_implementation="eager")
    model.eval()  # no dropout anywhere in Gemma 4's text model; eval keeps it explicit
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
        model.eval()
    if load_in_4bit:
        model.train()  # see the module comment (nothing in the model or adapter drops out)
    return model, used


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True, help="JSONL of packed rows")
    ap.add_argument("--adapter", help="PEFT LoRA folder; gradients are then the adapter's")
    ap.add_argument("--out", required=True)
    ap.add_argument("--float64", action="store_true",
                    help="run in fp64 (the exact reference used to check a fixture's conditioning)")
    ap.add_argument("--meta", action="append", default=[], help="KEY=VALUE stored in the file")
    ap.add_argument("--load-in-4bit", choices=["float32", "bfloat16"],
                    help="QLoRA: the base in NF4, dequantised to this compute dtype")
    ap.add_argument("--quantize-moe-experts", action="store_true",
                    help="with --load-in-4bit: the 3-D expert tensors in NF4 too (Axolotl's)")
    args = ap.parse_args()
    if args.load_in_4bit and not args.adapter:
        ap.error("--load-in-4bit needs --adapter (a 4-bit base is frozen)")
    if args.quantize_moe_experts and not args.load_in_4bit:
        ap.error("--quantize-moe-experts needs --load-in-4bit")

    torch.manual_seed(0)
    model, used_4bit = load_model(args.model, args.adapter,
                                  torch.float64 if args.float64 else torch.float32,
                                  args.load_in_4bit, args.quantize_moe_experts)
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
    if args.load_in_4bit:
        meta["load_in_4bit"] = args.load_in_4bit
        meta["nf4_modules"] = str(len(used_4bit))
        meta["quantize_moe_experts"] = str(args.quantize_moe_experts).lower()
    meta.update(kv.split("=", 1) for kv in args.meta)
    save_file(tensors, args.out, metadata=meta)
    print(json.dumps({"loss": loss_sum, "tokens": total, "grads": len(tensors) - 4}))


if __name__ == "__main__":
    main()
