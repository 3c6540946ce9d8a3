#!/usr/bin/env bash
# train_dry_run.sh: `eft train CONFIG --dry-run` on Axolotl's Gemma 4 examples and on configs
# made here: the text configs pass up to base_model (then, with a fake Hugging Face cache, up to
# the features this build lacks, and all the way with overrides); the vision and NVFP4 configs
# stop at the key eft does not support; broken configs give one located line and exit 1.
# Usage: train_dry_run.sh EFT_BINARY SHARED_DIR
set -uo pipefail
eft=$1
shared=${2:-}
ex="$shared/data/axolotl-examples"
data="$(cd "$(dirname "$0")/../data_files/gemma4" && pwd)"
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HF_HUB_CACHE="$tmp/hf" HF_HOME="$tmp/nohome"

. "$(dirname "$0")/lib/check.sh"

# A cached Hub snapshot: cache_repo KIND ORG/NAME (prints the snapshot folder).
cache_repo() {
  local d="$HF_HUB_CACHE/$1--${2/\//--}"
  mkdir -p "$d/refs" "$d/snapshots/0123abcd"
  printf 0123abcd >"$d/refs/main"
  echo "$d/snapshots/0123abcd"
}

if [ -d "$ex" ]; then
  for cfg in gemma4/31b-qlora gemma4/26b-a4b-moe-qlora gemma4/26b-a4b-moe-bnb-lora \
             gemma4-unified/12b-text-lora; do
    check "example $cfg: stops at base_model" 1 "base_model:" "not in the Hugging Face cache" \
      "$HF_HUB_CACHE/models--google--" "huggingface-cli download google/gemma-4-" \
      "or set base_model to the folder of a local copy" -- train "$ex/$cfg.yaml" --dry-run
  done
  check "example e2b-vision: processor_type" 1 "e2b-vision-lora.yaml:2:1: processor_type" \
    "not supported yet" -- train "$ex/gemma4/e2b-vision-lora.yaml" --dry-run
  check "example 12b-vision: processor_type" 1 "12b-vision-lora.yaml:10:1: processor_type" \
    "not supported yet" -- train "$ex/gemma4-unified/12b-vision-lora.yaml" --dry-run
  check "example nvfp4: dsv4_fp4_grouped_mode" 1 "dsv4_fp4_grouped_mode" "not supported yet" \
    -- train "$ex/gemma4/26b-a4b-moe-nvfp4-lora.yaml" --dry-run

  # With the model (its config.json) and the dataset in the cache, the dry run goes on to the
  # plan, and stops at the first feature this build does not have.
  snap=$(cache_repo models google/gemma-4-31B)
  cp "$data/31b/config.json" "$snap/"
  echo '{}' >"$snap/tokenizer.json"
  cache_repo datasets mlabonne/FineTome-100k >/dev/null
  # QLoRA is built: with an fp32 optimizer the plan prints in NF4 (about 14 GiB of NF4 weights for
  # 31B), then the weights are checked, and this cache holds only config.json.
  check "31b-qlora with the model cached: NF4 plan, then the missing weights" 1 \
    "memory plan (T=2048, micro batch 1, weights NF4, LoRA r=16" "of which NF4      " \
    "holds neither model.safetensors nor model.safetensors.index.json" \
    "no effect in eft: plugins, liger_layer_norm" -- train "$ex/gemma4/31b-qlora.yaml" --dry-run \
    --optimizer adamw_torch
  # With LoRA overrides the plan and the memory plan print; then the weights are checked, and
  # this cache holds only config.json.
  check "31b with LoRA overrides: plan, then the missing weights" 1 "Gemma 4 31B-shaped" \
    "30,697,345,280" \
    "memory plan (T=2048, micro batch 1, weights bf16, LoRA r=16 on q,k,v,o,gate,up,down" \
    "holds neither model.safetensors nor model.safetensors.index.json" \
    -- train "$ex/gemma4/31b-qlora.yaml" --dry-run \
    --load-in-4bit false --adapter lora --optimizer=adamw_torch
  check "override reaches the plan" 1 "T=4096, micro batch 2" -- \
    train "$ex/gemma4/31b-qlora.yaml" --dry-run --load_in_4bit=false --adapter lora \
    --optimizer adamw_torch --sequence-len 4096 --micro_batch_size 2
  snap=$(cache_repo models google/gemma-4-26B-A4B)
  cp "$data/26b-a4b/config.json" "$snap/"
  echo '{}' >"$snap/tokenizer.json"
  check "26b-bnb with bf16 LoRA overrides: 8-bit AdamW and expert LoRA in the plan" 1 \
    "Gemma 4 26B-A4B-shaped" "LoRA r=16 on q,k,v,o,gate,up,down,experts, AdamW 8-bit" \
    "holds neither model.safetensors nor model.safetensors.index.json" -- \
    train "$ex/gemma4/26b-a4b-moe-bnb-lora.yaml" --dry-run --load-in-4bit false \
    --adapter lora --quantize-moe-experts false
  # NF4 experts are built: the 26B QLoRA example passes the feature check, its plan holds the
  # experts in NF4, and then the weights are checked.
  check "26b-a4b-moe-qlora with the model cached: NF4 experts plan, then the missing weights" 1 \
    "memory plan (T=2048, micro batch 1, weights NF4 (experts too), LoRA r=16 on q,k,v,o,gate,up,down,experts, AdamW 8-bit" \
    "of which NF4      " "holds neither model.safetensors nor model.safetensors.index.json" -- \
    train "$ex/gemma4/26b-a4b-moe-qlora.yaml" --dry-run
  rm -rf "$HF_HUB_CACHE"
fi

# Configs made here, against a local tiny model (E4B-shaped: PLE, KV sharing) with real weights.
mkdir -p "$tmp/data"
"$eft" init-model --preset tiny-e4b --out "$tmp/model" --seed 1 >/dev/null || exit 1
echo '{}' >"$tmp/model/tokenizer.json"
echo '{"messages": []}' >"$tmp/data/train.jsonl"
base="base_model: $tmp/model
datasets:
  - path: $tmp/data/train.jsonl
    type: chat_template
adapter: lora
lora_r: 8
lora_alpha: 16
learning_rate: 1e-4"
printf '%s\nlora_target_modules: [q_proj, v_proj]\n' "$base" >"$tmp/ok.yaml"
check "local model: passes" 0 "custom Gemma 4 shape" "LoRA r=8 on q,v" \
  "weights     " "tensors of $tmp/model bound" "checks out" -- train "$tmp/ok.yaml" --dry-run
check "print-config" 0 "lora_r: 8" "learning_rate: 0.0001" -- train "$tmp/ok.yaml" --dry-run \
  --print-config
printf '%s\nlora_target_modules: "model.language_model.layers.[0-9]+.mlp.gate_proj"\n' "$base" \
  >"$tmp/regex.yaml"
check "regex selects gate only" 0 "LoRA r=8 on gate" -- train "$tmp/regex.yaml" --dry-run
printf '%s\nlora_target_modules: "model.layers.[0-9]+.self_attn.q_proj"\n' "$base" \
  >"$tmp/nomatch.yaml"
check "regex matching nothing" 1 "nomatch.yaml:9:22: lora_target_modules: matches none" \
  "model.language_model.layers.0.self_attn.q_proj" -- train "$tmp/nomatch.yaml" --dry-run
printf '%s\nlora_target_modules: "layers.(q_proj"\n' "$base" >"$tmp/badre.yaml"
cp "$tmp/model/model.safetensors" "$tmp/good.safetensors"
head -c 4000 "$tmp/good.safetensors" >"$tmp/model/model.safetensors"
check "truncated weights" 1 "model.safetensors" -- train "$tmp/ok.yaml" --dry-run
cp "$tmp/good.safetensors" "$tmp/model/model.safetensors"
check "invalid regex" 1 "badre.yaml:9:22: lora_target_modules: not a valid regular expression" \
  -- train "$tmp/badre.yaml" --dry-run
printf '%s\nlora_target_linear: true\nlora_r: sixteen\n' "$base" | sed '/^lora_r: 8$/d' \
  >"$tmp/type.yaml"
check "type error" 1 "type.yaml:9:9: lora_r: expected an integer" -- \
  train "$tmp/type.yaml" --dry-run
rm "$tmp/model/tokenizer.json"
check "no tokenizer" 1 "$tmp/model/tokenizer.json: not found" "tokenizer_config" \
  -- train "$tmp/ok.yaml" --dry-run
check "bad override" 1 "command line: --lora-r" -- train "$tmp/ok.yaml" --dry-run --lora-r x
check "no config" 1 "first argument must be the config file" -- train --dry-run
check "missing config" 1 "$tmp/none.yaml" -- train "$tmp/none.yaml" --dry-run

[ "$fails" = 0 ] || { echo "$fails failed"; exit 1; }
