#!/usr/bin/env bash
# bench_model.sh: forward + backward speed of eft against PyTorch (transformers) on the same
# checkpoint, T=1024, both cores, fp32: the 31B-shaped preset bench-31b (~125M parameters), or
# with PRESET=bench-26b-a4b the 26B-A4B-shaped one (mixture of experts: 32 experts, top 4).
#
#   [PRESET=bench-26b-a4b] bench/bench_model.sh [PYTHON]    (PYTHON with torch + transformers)
# Prints one JSON line per run; copy the figures into bench/RESULTS.md with the date and machine.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
threads=${OMP_NUM_THREADS:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target eft bench_model >/dev/null
preset=${PRESET:-bench-31b}
model=build/$preset
[ -f "$model/model.safetensors" ] || build/eft init-model --preset "$preset" --out "$model" --seed 1 >/dev/null
for mode in frozen full; do
  OMP_NUM_THREADS=$threads build/bench_model "$model" 1024 3 "$mode"
  "$py" bench/model_hf.py "$model" 1024 3 "$mode" "$threads" 2>/dev/null
done
OMP_NUM_THREADS=$threads build/bench_model "$model" 1024 3 frozen recompute
