#!/usr/bin/env python3
"""model_hf.py: the PyTorch reference for bench_model: forward + backward tokens per second of the
same checkpoint with Hugging Face transformers on the CPU (fp32, SDPA attention), same T, same
threads, same loss (mean CE over one row of random tokens).

    python bench/model_hf.py MODEL_DIR T ITERS full|frozen THREADS
"""
import json
import sys
import time

import torch
import transformers
from transformers import AutoConfig


def main():
    model_dir, T, iters, mode, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    torch.set_num_threads(threads)
    cfg = AutoConfig.from_pretrained(model_dir)
    cls = getattr(transformers, cfg.architectures[0])
    model = cls.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.train()
    if mode == "frozen":
        for p in model.parameters():
            p.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    vocab = model.config.get_text_config().vocab_size
    ids = torch.randint(0, vocab, (1, T), generator=g)
    if mode == "frozen":
        # Frozen base: the backward still runs through every layer down to the embeddings' output,
        # as it must to reach LoRA adapters; make that output require a gradient.
        model.get_input_embeddings().register_forward_hook(lambda m, i, o: o.requires_grad_(True))
    best, fwd_best, loss = 1e30, 1e30, 0.0
    for i in range(iters + 1):
        t0 = time.perf_counter()
        out = model(input_ids=ids, labels=ids, use_cache=False)
        t1 = time.perf_counter()
        out.loss.backward()
        t2 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        loss = out.loss.item()
        if i > 0 and t2 - t0 < best:
            best, fwd_best = t2 - t0, t1 - t0
    print(json.dumps({"impl": "pytorch", "mode": mode, "T": T, "threads": threads, "loss": round(loss, 6),
                      "fwd_s": round(fwd_best, 3), "fwd_bwd_s": round(best, 3),
                      "tokens_per_s": round(T / best, 1), "torch": torch.__version__,
                      "transformers": transformers.__version__}))


if __name__ == "__main__":
    main()
