#!/usr/bin/env python3
"""make_train_reference.py: ten LoRA training steps by Hugging Face Trainer + PEFT, for eft to match.

    /work/pyenv/bin/python tools/make_train_reference.py BUILD_DIR
        (torch, transformers 5.x, peft, safetensors; BUILD_DIR holds the eft binary)

Writes tests/data_files/train/ (tests/train/test_train_reference.c reads it, without Python):

  rows.jsonl            20 pre-tokenized rows {"input_ids", "labels"}: micro-batch i of the run is
                        row i. Rows alternate short (2-12 trained labels) and long (26-46), so the
                        two micro-batches of every update carry very different token counts and
                        the two loss normalisations differ by far more than rounding; three rows
                        train their first label (the unshifted count c_i is then n_i + 1), one has
                        a masked span in the middle. Every update's token count is different, so
                        the cumulative count eft logs shows which rows it used in which update.
  eval_rows.jsonl       4 rows {"input_ids", "labels", "position_ids"} for the PEFT check below.
  adapter0/             the starting adapter, made by PEFT (get_peft_model on the 7 linear names,
                        r 4, alpha 8) with lora_B set to random values: PEFT starts B at zero,
                        which would hide every mistake in B's gradient for the first update.
  reference.json        the run (hyper-parameters, eft's config lines) and, for each
                        loss_normalization, every step's loss, grad_norm (pre-clip),
                        learning_rate, epoch and cumulative trained tokens as the Trainer logged
                        them, and how far the fp32 run is from the same run in fp64.
  reference-tokens.safetensors, reference-micro_batch.safetensors
                        the adapter after the ten updates (PEFT's names, F32).
  eft-trained/          an adapter eft trained and saved (a short fresh-init run of
                        EFT_TRAINED_CONFIG: Axolotl's target regex, rsLoRA), and peft_loss.json:
                        PEFT's loss with it on eval_rows.jsonl (tools/check_peft_adapter.py:
                        PeftModel.from_pretrained took every tensor as saved).

The run is the real transformers Trainer, made to consume exactly those micro-batches in order
(a SequentialSampler, micro_batch_size 1, no shuffling, no packing). Mode A (tokens) and mode B
(micro_batch) are chosen as Axolotl chooses them, through the Trainer's model_accepts_loss_kwargs
(training-math.md 2.4): True gives num_items_in_batch to the loss (mode A), False divides each
micro-batch's mean by the accumulation steps (mode B; what Axolotl's trainer does for Gemma 4).
Mode A counts the UNSHIFTED labels of the update, as transformers 5.14.1 (Axolotl's pin) does;
later transformers (PR 46204) count labels[..., 1:], so the script turns that newer rule off
(Trainer._loss_shifts_labels) and fails loudly where the attribute does not exist.

Conditioning: at learning_rate 1e-2 this random model's run is chaotic (Adam turns rounding noise
in tiny gradients into full steps; the fp32 and fp64 Trainer runs end 10% apart), so the run uses
1e-3, where they end 4e-6 apart; reference.json records that distance for each mode.

The checkpoint comes from `eft init-model --preset tiny-31b --seed SEED --vocab-size 384` (the
demo tokenizer's vocabulary fits), which the C test rebuilds bit for bit.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "data_files", "train")
PRESET, SEED, VOCAB = "tiny-31b", 3, 384
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK, ALPHA, B_STD = 4, 8, 0.05

# The run, as eft config keys (reference.json "config"; the C test adds the paths and
# loss_normalization). The Trainer gets the same values below.
CONFIG = {
    "sequence_len": 64,
    "sample_packing": False,
    "curriculum_sampling": True,  # eft keeps the dataset order: micro-batch i is row i
    "shuffle_merged_datasets": False,
    "adapter": "lora",
    "micro_batch_size": 1,
    "gradient_accumulation_steps": 2,
    "num_epochs": 1,
    "optimizer": "adamw_torch",
    "lr_scheduler": "cosine",
    "learning_rate": 1e-3,
    "warmup_steps": 2,
    "weight_decay": 0.3,
    "max_grad_norm": 4.5,  # clips some updates and not others (asserted below)
    "adam_beta1": 0.9,
    "adam_beta2": 0.99,
    "adam_epsilon": 1e-8,
    "logging_steps": 1,
    "seed": 42,
}
STEPS = 10

# A fresh-init eft run whose saved adapter PEFT must load (part 3 of the issue); the datasets are
# rows.jsonl. Stored in eft-trained/peft_loss.json "config".
EFT_TRAINED_CONFIG = {
    "sequence_len": 64,
    "sample_packing": False,
    "adapter": "lora",
    "lora_r": 2,
    "lora_alpha": 4,
    "peft_use_rslora": True,
    "lora_target_modules": r"model.language_model.layers.[\d]+.(_checkpoint_wrapped_module.)?"
                           r"(mlp|self_attn).(up|down|gate|q|k|v|o)_proj",
    "micro_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "num_epochs": 1,
    "max_steps": 4,
    "learning_rate": 0.02,
    "lr_scheduler": "constant",
    "seed": 5,
}


def yaml_config(paths, keys):
    """A config file: the paths, then the keys (strings single-quoted, as the C test writes)."""
    lines = [f"{k}: {v}" for k, v in paths.items()]
    for k, v in keys.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, str):
            v = "'" + v.replace("'", "''") + "'"
        lines.append(f"{k}: {v}")
    return "\n".join(lines) + "\n"


def make_rows(rng):
    """20 training rows (see the docstring); redrawn until every update's count is distinct."""
    while True:
        rows = []
        for i in range(20):
            if i % 2 == 0:
                n = rng.randint(6, 12)
                k = n - rng.randint(2, 5)  # a masked prompt of k tokens, 2..5 trained
            else:
                n = rng.randint(32, 48)
                k = rng.randint(1, 7)
            ids = [2] + [rng.randint(4, 370) for _ in range(n - 1)]
            labels = [-100] * k + ids[k:]
            if i in (3, 8, 15):
                labels = list(ids)  # pretraining-style: the first label is trained too
            if i == 11:
                labels[12:20] = [-100] * 8  # a second prompt inside the row
            rows.append({"input_ids": ids, "labels": labels})
        counts = [sum(l != -100 for l in r["labels"]) for r in rows]
        per_update = [counts[2 * k] + counts[2 * k + 1] for k in range(10)]
        if len(set(per_update)) == 10:
            return rows


def make_eval_rows(rng):
    rows = []
    for n in (14, 23, 9, 31):
        ids = [2] + [rng.randint(4, 370) for _ in range(n - 1)]
        k = rng.randint(1, 4)
        rows.append({"input_ids": ids, "labels": [-100] * k + ids[k:],
                     "position_ids": list(range(n))})
    return rows


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(", ", ": ")) + "\n")


def load_base(model_dir, dtype):
    import transformers

    cfg = transformers.AutoConfig.from_pretrained(model_dir)
    cls = getattr(transformers, cfg.architectures[0])
    return cls.from_pretrained(model_dir, dtype=dtype, attn_implementation="eager")


def make_adapter0(model_dir, out):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(SEED)
    model = get_peft_model(load_base(model_dir, torch.float32),
                           LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=TARGETS,
                                      lora_dropout=0.0, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape) * B_STD)
    model.peft_config["default"].base_model_name_or_path = f"eft init-model {PRESET} seed {SEED}"
    model.save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))  # PEFT's model card, naming a temporary folder


def file_name(param_name):
    """PEFT's parameter name as adapter_model.safetensors spells it (no adapter name)."""
    return param_name.replace(".default.", ".")


def train(model_dir, adapter_dir, rows, mode, dtype, tmp):
    """The Trainer run; returns (log entries, trained counts per micro-batch, final adapter)."""
    from peft import PeftModel
    from transformers import Trainer, TrainingArguments

    model = PeftModel.from_pretrained(load_base(model_dir, torch.float32), adapter_dir,
                                      is_trainable=True)
    model = model.to(dtype)

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    def collate(batch):
        assert len(batch) == 1
        return {k: torch.tensor([batch[0][k]]) for k in ("input_ids", "labels")}

    seen = []

    class InOrder(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)

        def training_step(self, model, inputs, num_items_in_batch=None):
            seen.append((inputs["input_ids"][0].tolist(), int((inputs["labels"] != -100).sum())))
            return super().training_step(model, inputs, num_items_in_batch)

    args = TrainingArguments(
        output_dir=os.path.join(tmp, f"trainer-{mode}"), per_device_train_batch_size=1,
        gradient_accumulation_steps=CONFIG["gradient_accumulation_steps"],
        num_train_epochs=CONFIG["num_epochs"], learning_rate=CONFIG["learning_rate"],
        lr_scheduler_type=CONFIG["lr_scheduler"], warmup_steps=CONFIG["warmup_steps"],
        weight_decay=CONFIG["weight_decay"], max_grad_norm=CONFIG["max_grad_norm"],
        adam_beta1=CONFIG["adam_beta1"], adam_beta2=CONFIG["adam_beta2"],
        adam_epsilon=CONFIG["adam_epsilon"], optim=CONFIG["optimizer"], logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, seed=42, bf16=False, fp16=False,
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=True)
    trainer = InOrder(model=model, args=args, train_dataset=Rows(), data_collator=collate)
    # training-math.md 2.4: the flag picks the mode (Axolotl turns it off for Gemma 4).
    trainer.model_accepts_loss_kwargs = mode == "tokens"
    if not hasattr(trainer, "_loss_shifts_labels"):
        sys.exit("this transformers has no Trainer._loss_shifts_labels: check how it counts "
                 "num_items_in_batch (5.14.1 counts the unshifted labels) and adapt the script")
    trainer._loss_shifts_labels = False  # transformers 5.14.1's count: unshifted labels
    trainer.train()

    assert [ids for ids, _ in seen] == [r["input_ids"] for r in rows], "micro-batches out of order"
    logs = [e for e in trainer.state.log_history if "loss" in e and "grad_norm" in e]
    assert [e["step"] for e in logs] == list(range(1, STEPS + 1)), logs
    adapter = {file_name(n): p.detach().to(torch.float32).contiguous()
               for n, p in sorted(model.named_parameters()) if "lora_" in n}
    return logs, [c for _, c in seen], adapter


def rel_dist(a, b):
    return max(((a[k].double() - b[k].double()).norm() / b[k].double().norm()).item() for k in b)


def run_eft_trained(eft, model_dir, tmp):
    """Part 3: eft trains an adapter; PEFT loads it and records its loss on eval_rows.jsonl."""
    # Run in tmp with base_model "model", so that adapter_config.json's base_model_name_or_path
    # is the same word whenever the fixture is made.
    assert model_dir == os.path.join(tmp, "model")
    out = os.path.join(tmp, "eft-out")
    cfg = os.path.join(tmp, "eft-trained.yaml")
    paths = {"base_model": "model", "tokenizer_config": os.path.join(ROOT, "examples", "demo"),
             "datasets": "[{path: " + os.path.join(OUT, "rows.jsonl") + "}]",
             "dataset_prepared_path": "prepared", "output_dir": "eft-out"}
    with open(cfg, "w") as f:
        f.write(yaml_config(paths, EFT_TRAINED_CONFIG))
    subprocess.run([eft, "train", cfg], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd=tmp)
    dest = os.path.join(OUT, "eft-trained")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    for f in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(os.path.join(out, f), dest)
    check = os.path.join(HERE, "check_peft_adapter.py")
    res = subprocess.run([sys.executable, check, model_dir, dest,
                          os.path.join(OUT, "eval_rows.jsonl")],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(res.strip().splitlines()[-1])
    result.update({"preset": PRESET, "seed": SEED, "vocab_size": VOCAB,
                   "config": EFT_TRAINED_CONFIG})
    with open(os.path.join(dest, "peft_loss.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"eft-trained: PEFT loss {result['loss']:.9g} (base {result['base_loss']:.9g})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    args = ap.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":
        # PEFT keeps target_modules in a set: a fixed hash seed writes the same file every time.
        os.execve(sys.executable, [sys.executable] + sys.argv,
                  {**os.environ, "PYTHONHASHSEED": "0"})
    eft = os.path.join(os.path.abspath(args.build), "eft")
    import peft
    import transformers
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(2024)
    rows = make_rows(rng)
    write_jsonl(os.path.join(OUT, "rows.jsonl"), rows)
    write_jsonl(os.path.join(OUT, "eval_rows.jsonl"), make_eval_rows(rng))

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "model")
        subprocess.run([eft, "init-model", "--preset", PRESET, "--out", model_dir, "--seed",
                        str(SEED), "--vocab-size", str(VOCAB)], check=True,
                       stdout=subprocess.DEVNULL)
        adapter0 = os.path.join(OUT, "adapter0")
        shutil.rmtree(adapter0, ignore_errors=True)
        make_adapter0(model_dir, adapter0)

        ref = {"preset": PRESET, "seed": SEED, "vocab_size": VOCAB, "steps": STEPS,
               "config": CONFIG, "transformers": transformers.__version__,
               "peft": peft.__version__, "torch": torch.__version__.split("+")[0], "modes": {}}
        for mode in ("tokens", "micro_batch"):
            logs, counts, adapter = train(model_dir, adapter0, rows, mode, torch.float32, tmp)
            logs64, _, adapter64 = train(model_dir, adapter0, rows, mode, torch.float64, tmp)
            clipped = [e["grad_norm"] > CONFIG["max_grad_norm"] for e in logs]
            assert any(clipped) and not all(clipped), f"{mode}: clipping on steps {clipped}"
            cum, steps = 0, []
            for k, e in enumerate(logs):
                cum += counts[2 * k] + counts[2 * k + 1]
                steps.append({"step": e["step"], "epoch": e["epoch"], "loss": e["loss"],
                              "grad_norm": e["grad_norm"], "learning_rate": e["learning_rate"],
                              "trainable_tokens": cum})
            noise = {
                "adapter_rel": rel_dist(adapter, adapter64),
                "loss_rel": max(abs(a["loss"] - b["loss"]) / abs(b["loss"])
                                for a, b in zip(logs, logs64)),
                "grad_norm_rel": max(abs(a["grad_norm"] - b["grad_norm"]) / b["grad_norm"]
                                     for a, b in zip(logs, logs64)),
            }
            ref["modes"][mode] = {"steps": steps, "fp32_vs_fp64": noise,
                                  "clipped": clipped}
            save_file(adapter, os.path.join(OUT, f"reference-{mode}.safetensors"),
                      metadata={"format": "pt"})  # one key: safetensors orders them at random
            print(f"{mode}: final loss {logs[-1]['loss']:.6f}, fp32 vs fp64 {noise}")
        with open(os.path.join(OUT, "reference.json"), "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")
        run_eft_trained(eft, model_dir, tmp)


if __name__ == "__main__":
    main()
