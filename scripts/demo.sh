#!/usr/bin/env bash
# demo.sh: builds eft, makes a tiny random Gemma 4 (31B-shaped: k_eq_v, one global KV head,
# head dim 64 on the global layer), and teaches it to reverse short words in Gemma 4 chat format
# on this machine's CPU in about a minute and a half. Shows the eval loss falling, and questions
# answered before and after training.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target eft >/dev/null
eft=build/eft
cfg=examples/demo/config.yaml
rm -rf build/demo
mkdir -p build/demo

echo "== 1. A random 31B-shaped Gemma 4, in the Hugging Face layout (transformers loads it)"
$eft init-model --preset demo-31b --out build/demo/model --seed 1 --vocab-size 384
$eft info --model build/demo/model "$cfg" | sed -n '1,12p'

questions=("reverse: house" "reverse: plane" "reverse: garden" "reverse: kitten")
ask() { # ask MODEL_DIR
  printf '%s\n' "${questions[@]}" | $eft inference "$cfg" --base-model "$1" --max-new-tokens 12 |
    paste <(printf '%s\n' "${questions[@]}") - | sed 's/^/    /; s/\t/  ->  /'
}
echo
echo "== 2. Before training, the model answers at random"
ask build/demo/model

echo
echo "== 3. eft train $cfg  (every weight, from scratch; an eval after every epoch)"
EFT_NO_TTY=1 $eft train "$cfg" 2>&1 | grep -E "eval_loss|^train .*/.* loss|done:|run:|samples"

echo
echo "== 4. After training"
ask build/demo/full
echo
first=$(grep -m1 eval_loss build/demo/full/metrics.jsonl | sed 's/.*"eval_loss": \([0-9.]*\).*/\1/')
last=$(grep eval_loss build/demo/full/metrics.jsonl | tail -1 | sed 's/.*"eval_loss": \([0-9.]*\).*/\1/')
echo "eval loss: $first before training, $last after (metrics in build/demo/full/metrics.jsonl)"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a / 4) }' || { echo "demo: the eval loss did not fall" >&2; exit 1; }
