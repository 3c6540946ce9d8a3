#!/usr/bin/env python3
"""make_optim_reference.py: reference trajectories for eft's optimizer, schedules and cadence.

Writes three small files under tests/data_files/optim/ (read by tests/train/test_opt*.c,
test_sched*.c and test_cadence*.c):

  adamw.safetensors  torch.optim.AdamW run for 10 updates on three small fp32 tensors named like
                     PEFT parameters (two LoRA weights, decayed; one norm weight, not decayed),
                     in its three CPU implementations (foreach, single-tensor, fused), with
                     clip_grad_norm_(max_norm=1.0) before each step and transformers' cosine
                     schedule (W=2, T=10, so the first update runs at lr 0). One tensor has no
                     gradient in update 4. Tensors: init.<p>, grad.<k>.<p> (absent when the
                     gradient is missing), clipped.<k>.<p> (the same after torch's clipping),
                     <variant>.<k>.<p>.{value,m,v} after update k. The
                     metadata "reference" is JSON: names, hyper-parameters, and per update the
                     learning rate used and the pre-clip norm (exact doubles).
  sched.json         learning rates from transformers.get_scheduler (and Axolotl's cosine with
                     cosine_min_lr_ratio, restated below since Axolotl is not installed here) for
                     k = 0 .. T+2, for several schedules, kwargs and (W, T).
  trainer.json       transformers.Trainer runs of a one-parameter model on CPU: per update the
                     micro-batches it consumed, the epoch, the learning rate; the steps it logged,
                     evaluated and saved at; the trainer state's intervals.

Usage: /work/pyenv/bin/python tools/make_optim_reference.py [OUT_DIR]
Needs torch and transformers; never run by the test suite (the outputs are committed).
"""
import json
import math
import os
import sys
import tempfile

import torch
import transformers
from safetensors.torch import save_file
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments, get_scheduler

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data_files", "optim")

PREFIX = "base_model.model.model.language_model.layers.0."
PARAMS = [  # name, shape
    (PREFIX + "self_attn.q_proj.lora_A.default.weight", (4, 8)),
    (PREFIX + "self_attn.q_proj.lora_B.default.weight", (3, 4)),
    (PREFIX + "input_layernorm.weight", (5,)),
]
LR, WD, MAX_NORM, W, T = 1e-2, 0.1, 1.0, 2, 10
MISSING = (4, 1)  # update 4 has no gradient for parameter 1


def module_tree():
    """A module tree whose named_parameters() are PARAMS, for the Trainer's decay rule."""
    root = nn.Module()
    for name, shape in PARAMS:
        *path, leaf = name.split(".")
        m = root
        for part in path:
            if not hasattr(m, part):
                m.add_module(part, nn.Module())
            m = getattr(m, part)
        m.register_parameter(leaf, nn.Parameter(torch.zeros(shape)))
    return root


def make_inputs():
    g = torch.Generator().manual_seed(1234)
    init = [torch.randn(shape, generator=g) * 0.5 for _, shape in PARAMS]
    grads = []
    for k in range(T):
        scale = [0.05, 0.4, 2.0][k % 3]  # some updates clip (norm > 1), others do not
        gk = []
        for p, (_, shape) in enumerate(PARAMS):
            if (k, p) == MISSING:
                gk.append(None)
                continue
            x = torch.randn(shape, generator=g) * scale
            if p == 2 and k == 1:
                x[0] = 0.0  # an exact zero gradient
            gk.append(x)
        grads.append(gk)
    return init, grads


def run_adamw(variant, init, grads, decay_names):
    params = [nn.Parameter(x.clone()) for x in init]
    names = [n for n, _ in PARAMS]
    groups = [
        {"params": [p for p, n in zip(params, names) if n in decay_names], "weight_decay": WD},
        {"params": [p for p, n in zip(params, names) if n not in decay_names], "weight_decay": 0.0},
    ]
    kw = {"foreach": dict(foreach=True), "single": dict(foreach=False),
          "fused": dict(fused=True)}[variant]
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8, **kw)
    sched = get_scheduler("cosine", opt, num_warmup_steps=W, num_training_steps=T)
    lrs, norms, out = [], [], {}
    for k in range(T):
        for p, g in zip(params, grads[k]):
            p.grad = None if g is None else g.clone()
        norm = torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], MAX_NORM)
        if variant == "foreach":
            for i, p in enumerate(params):
                if p.grad is not None:
                    out[f"clipped.{k}.{i}"] = p.grad.clone()
        opt.step()
        lrs.append(sched.get_last_lr()[0])  # the rate this update used (transformers 5.x)
        norms.append(float(norm))
        sched.step()
        for i, p in enumerate(params):
            st = opt.state.get(p, {})
            out[f"{variant}.{k}.{i}.value"] = p.detach().clone()
            out[f"{variant}.{k}.{i}.m"] = st["exp_avg"].clone() if st else torch.zeros_like(p)
            out[f"{variant}.{k}.{i}.v"] = st["exp_avg_sq"].clone() if st else torch.zeros_like(p)
    return lrs, norms, out


def write_adamw():
    decay = set(Trainer.get_decay_parameter_names(None, module_tree()))
    init, grads = make_inputs()
    tensors = {f"init.{i}": x for i, x in enumerate(init)}
    for k, gk in enumerate(grads):
        for i, g in enumerate(gk):
            if g is not None:
                tensors[f"grad.{k}.{i}"] = g
    meta = None
    for variant in ("foreach", "single", "fused"):
        lrs, norms, out = run_adamw(variant, init, grads, decay)
        tensors.update(out)
        if meta is None:
            meta = {"lrs": lrs, "norms": norms}
        assert meta["lrs"] == lrs
    ref = {
        "generator": "tools/make_optim_reference.py",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "names": [n for n, _ in PARAMS], "decays": [n in decay for n, _ in PARAMS],
        "lr": LR, "weight_decay": WD, "betas": [0.9, 0.999], "eps": 1e-8,
        "max_grad_norm": MAX_NORM, "schedule": "cosine", "warmup": W, "updates": T,
        "lrs": meta["lrs"], "norms": meta["norms"],
    }
    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(OUT, "adamw.safetensors"), metadata={"reference": json.dumps(ref)})


def axolotl_cosine_min_ratio(W, T, r):
    """Axolotl's _get_cosine_schedule_with_min_lr_lambda (utils/schedulers.py), restated."""
    def lam(k):
        if k < W:
            return float(k) / float(max(1, W))
        progress = float(k - W) / float(max(1, T - W))
        return (1 - r) * (0.5 * (1.0 + math.cos(math.pi * progress))) + r
    return lam


def write_sched():
    cases = []
    specs = [
        ("linear", {}), ("cosine", {}), ("cosine", {"num_cycles": 1.5}), ("constant", {}),
        ("constant_with_warmup", {}), ("cosine_with_min_lr", {"min_lr_rate": 0.1}),
        ("cosine_with_min_lr", {"min_lr": 1e-5}),
        ("cosine_with_min_lr", {"min_lr_rate": 0.25, "num_cycles": 1.0}),
        ("polynomial", {}), ("polynomial", {"lr_end": 1e-5, "power": 2.0}),
        ("cosine_with_restarts", {}), ("cosine_with_restarts", {"num_cycles": 3}),
    ]
    shapes = [(2, 10), (0, 7), (3, 3), (5, 3), (7, 50)]
    for lr in (2e-4, 3e-5):
        for name, kwargs in specs:
            for W, Tn in shapes:
                if name == "polynomial" and W == Tn:
                    continue  # transformers divides by zero there; eft refuses it
                opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
                sched = get_scheduler(name, opt, num_warmup_steps=W, num_training_steps=Tn,
                                      scheduler_specific_kwargs=dict(kwargs))
                lrs = [sched.get_last_lr()[0]]
                for _ in range(Tn + 2):
                    opt.step()
                    sched.step()
                    lrs.append(sched.get_last_lr()[0])
                cases.append({"lr_scheduler": name, "kwargs": kwargs, "lr": lr, "W": W,
                              "T": Tn, "lrs": lrs})
        for W, Tn in shapes:
            for r in (0.1, 0.5):
                opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
                sched = torch.optim.lr_scheduler.LambdaLR(opt, axolotl_cosine_min_ratio(W, Tn, r))
                lrs = [sched.get_last_lr()[0]]
                for _ in range(Tn + 2):
                    opt.step()
                    sched.step()
                    lrs.append(sched.get_last_lr()[0])
                cases.append({"lr_scheduler": "cosine", "cosine_min_lr_ratio": r, "kwargs": {},
                              "lr": lr, "W": W, "T": Tn, "lrs": lrs})
    with open(os.path.join(OUT, "sched.json"), "w") as f:
        json.dump({"generator": "tools/make_optim_reference.py",
                   "transformers": transformers.__version__, "cases": cases}, f, indent=0)
        f.write("\n")


class Tiny(nn.Module):
    """One parameter; counts the training forward passes (= micro-batches)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, x, labels=None):
        if self.training:
            self.calls += 1
        return {"loss": ((self.w - x.float()) ** 2).mean()}


class Recorder(TrainerCallback):
    def __init__(self, model):
        self.model, self.last_calls = model, 0
        self.updates, self.logs, self.evals, self.saves = [], [], [], []

    def on_step_end(self, args, state, control, **kw):
        self.updates.append({"step": state.global_step, "epoch": state.epoch,
                             "micro_batches": self.model.calls - self.last_calls})
        self.last_calls = self.model.calls

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.logs.append({"step": state.global_step, "learning_rate": logs["learning_rate"]})

    def on_evaluate(self, args, state, control, **kw):
        self.evals.append(state.global_step)

    def on_save(self, args, state, control, **kw):
        self.saves.append(state.global_step)


def write_trainer():
    # Each case is what Axolotl's builder would hand the Trainer for the config in "config"
    # (max_steps = Axolotl's estimate or max_steps, eval_on_start with eval steps/strategy).
    cases = [
        {"rows": 5, "config": {"micro_batch_size": 1, "gradient_accumulation_steps": 2,
                               "num_epochs": 2, "logging_steps": 1, "eval_steps": 0.34,
                               "save_steps": 2, "val_set_size": 0.2},
         "args": dict(max_steps=5, num_train_epochs=2, per_device_train_batch_size=1,
                      gradient_accumulation_steps=2, logging_steps=1, eval_strategy="steps",
                      eval_steps=0.34, eval_on_start=True, save_strategy="steps", save_steps=2,
                      lr_scheduler_type="cosine", warmup_steps=0)},
        {"rows": 7, "config": {"micro_batch_size": 2, "gradient_accumulation_steps": 3,
                               "num_epochs": 2.5, "logging_steps": 2, "eval_strategy": "epoch",
                               "save_strategy": "epoch", "val_set_size": 0.2},
         "args": dict(max_steps=3, num_train_epochs=2.5, per_device_train_batch_size=2,
                      gradient_accumulation_steps=3, logging_steps=2, eval_strategy="epoch",
                      eval_on_start=True, save_strategy="epoch", lr_scheduler_type="cosine",
                      warmup_steps=0)},
        {"rows": 10, "config": {"micro_batch_size": 1, "gradient_accumulation_steps": 4,
                                "max_steps": 8, "logging_steps": 3, "eval_steps": 3,
                                "save_strategy": "no", "val_set_size": 0.2,
                                "lr_scheduler": "linear", "warmup_steps": 3},
         "args": dict(max_steps=8, num_train_epochs=1, per_device_train_batch_size=1,
                      gradient_accumulation_steps=4, logging_steps=3, eval_strategy="steps",
                      eval_steps=3, eval_on_start=True, save_strategy="no",
                      lr_scheduler_type="linear", warmup_steps=3)},
        {"rows": 9, "config": {"micro_batch_size": 3, "gradient_accumulation_steps": 2,
                               "num_epochs": 3, "logging_steps": 1, "eval_strategy": "steps",
                               "save_steps": 0.5, "val_set_size": 0.2},
         "args": dict(max_steps=5, num_train_epochs=3, per_device_train_batch_size=3,
                      gradient_accumulation_steps=2, logging_steps=1, eval_strategy="steps",
                      eval_on_start=True, save_strategy="steps", save_steps=0.5,
                      lr_scheduler_type="cosine", warmup_steps=0)},
        {"rows": 12, "config": {"micro_batch_size": 1, "gradient_accumulation_steps": 2,
                                "num_epochs": 2, "evals_per_epoch": 3, "saves_per_epoch": 2,
                                "val_set_size": 0.2},
         "args": dict(max_steps=12, num_train_epochs=2, per_device_train_batch_size=1,
                      gradient_accumulation_steps=2, logging_steps=1, eval_strategy="steps",
                      eval_steps=1.0 / (3 * 2), eval_on_start=True, save_strategy="steps",
                      save_steps=1.0 / (2 * 2), lr_scheduler_type="cosine", warmup_steps=0)},
        {"rows": 40, "config": {"micro_batch_size": 1, "gradient_accumulation_steps": 1,
                                "num_epochs": 1, "logging_steps": 5, "save_strategy": "no"},
         "args": dict(max_steps=40, num_train_epochs=1, per_device_train_batch_size=1,
                      gradient_accumulation_steps=1, logging_steps=5, eval_strategy="no",
                      save_strategy="no", lr_scheduler_type="cosine", warmup_steps=2)},
    ]
    out = []
    for case in cases:
        model = Tiny()
        rec = Recorder(model)
        train = [{"x": float(i)} for i in range(case["rows"])]
        with tempfile.TemporaryDirectory() as tmp:
            args = TrainingArguments(output_dir=tmp, use_cpu=True, report_to=[], learning_rate=LR,
                                     disable_tqdm=True, save_only_model=True,
                                     dataloader_drop_last=False, **case["args"])
            trainer = Trainer(model=model, args=args, train_dataset=train,
                              eval_dataset=[{"x": 0.5}], callbacks=[rec])
            trainer.train()
            st = trainer.state
        out.append({"rows": case["rows"], "config": case["config"], "updates": rec.updates,
                    "logs": rec.logs, "evals": rec.evals, "saves": rec.saves,
                    "state": {"max_steps": st.max_steps, "num_train_epochs": st.num_train_epochs,
                              "logging_steps": st.logging_steps, "eval_steps": st.eval_steps,
                              "save_steps": st.save_steps}})
    with open(os.path.join(OUT, "trainer.json"), "w") as f:
        json.dump({"generator": "tools/make_optim_reference.py",
                   "transformers": transformers.__version__, "cases": out}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    write_adamw()
    write_sched()
    write_trainer()
    print("wrote", OUT)
