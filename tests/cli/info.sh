#!/usr/bin/env bash
# info.sh: `eft info` on the committed variant configs: it runs, prints the plan and the counts,
# and a missing folder or config.json is a user error (exit 1) naming the path.
# Usage: info.sh EFT_BINARY [SHARED_DIR]
set -uo pipefail
eft=$1
data="$(cd "$(dirname "$0")/../data_files/gemma4" && pwd)"
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

. "$(dirname "$0")/lib/check.sh"

check 31b 0 "Gemma 4 31B-shaped" "30,697,345,280" "layer plan" "     59 full" "memory plan" \
  "no recompute" "total" -- info --model "$data/31b"
check 26b-active 0 "25,233,141,760" "3,822,530,560" "128 experts, top 8" \
  -- info --model "$data/26b-a4b" --load-in-4bit --gradient-checkpointing
check e2b-sharing 0 "sliding layers read layer 13, full layers read layer 14" "<-14" \
  "table [262144, 8960]" -- info --model "$data/e2b" --sequence_len 4096 --lora-r 8
check tensors 0 "model.language_model.layers.0.self_attn.q_proj.weight" "[8192, 5376]" \
  -- info --model "$data/31b" --tensors
check missing-dir 1 "$tmp/nowhere: no such folder" -- info --model "$tmp/nowhere"
mkdir -p "$tmp/empty"
check missing-config 1 "$tmp/empty/config.json: not found" -- info --model "$tmp/empty"
check no-model 1 "--model DIR is required" -- info
check full-nf4 1 "load_in_4bit needs adapter: lora" \
  -- info --model "$data/e2b" --adapter none --load-in-4bit
check bad-len 1 "--sequence-len: expected a whole number" \
  -- info --model "$data/e2b" --sequence-len 2k
printf '{"model_type": "gemma4", "text_config": {"num_key_value_heads": 3}}' >"$tmp/empty/config.json"
check bad-config 1 "$tmp/empty/config.json: text_config.num_attention_heads (8) is not divisible" \
  -- info --model "$tmp/empty"

[ "$fails" = 0 ] || { echo "$fails failed"; exit 1; }
