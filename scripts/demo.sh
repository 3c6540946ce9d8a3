#!/usr/bin/env bash
# demo.sh: builds eft, makes a tiny random Gemma 4 (31B-shaped), shows its plan, and runs one
# forward and backward pass (with and without gradient checkpointing) over packed documents.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target eft >/dev/null
eft=build/eft
out=build/demo
rm -rf "$out"
mkdir -p "$out"

echo "== eft init-model: a random 31B-shaped Gemma 4 in the Hugging Face layout"
$eft init-model --preset demo-31b --out "$out/model" --seed 1
echo
echo "== eft info: its layer plan, parameters and the memory a run would need"
$eft info --model "$out/model" --sequence-len 512 --lora-r 8
echo
echo "== eft debug loss: two packed rows (four documents), the loss and every gradient"
$eft debug loss --model "$out/model" --input examples/demo/rows.jsonl \
  --dump-grads "$out/grads.safetensors"
$eft debug loss --model "$out/model" --input examples/demo/rows.jsonl --recompute \
  --dump-grads "$out/grads-recompute.safetensors"
if cmp -s "$out/grads.safetensors" "$out/grads-recompute.safetensors"; then
  echo "gradient checkpointing changed no bit of the gradients"
else
  echo "demo: gradient checkpointing changed the gradients" >&2
  exit 1
fi
