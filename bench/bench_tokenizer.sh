#!/usr/bin/env bash
# bench_tokenizer.sh: eft's tokenizer against Hugging Face `tokenizers`, same text, same run.
#
# Builds eft and bench/bench_tokenizer.c, makes a ~30 MB JSONL corpus (bench/tokenizer_hf.py
# corpus: Python sources, the Python manual's prose, and the varied reference strings), then,
# RUNS times, back to back: eft's tok_encode_batch (median of 3, each from a fresh load), HF's
# encode_batch on all cores (best of 2: the faster for HF), a check that every document's ids
# agree, and the ratio. Last, the `eft tokenize` command end to end (JSON in and out, load
# included). The machine is shared: compare only numbers from the same run. Results go in
# bench/RESULTS.md by hand.
#
#   bench/bench_tokenizer.sh            # env: RUNS=3 MB=30 PYTHON=/work/pyenv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${EFT_SHARED:-../shared}
tok=$shared/data/gemma3-tokenizer/tokenizer.json
py=${PYTHON:-/work/pyenv/bin/python}
out=build/bench-tokenizer
mkdir -p "$out"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target eft >/dev/null
# shellcheck disable=SC2046
cc -O2 -march=native -fopenmp -D_GNU_SOURCE -Isrc bench/bench_tokenizer.c build/libeft.a \
  $(pkg-config --libs libcjson libpcre2-8 libxxhash libzstd yaml-0.1) -lopenblas -lm \
  -o "$out/bench_tokenizer"

corpus=$out/corpus-${MB:-30}mb.jsonl
[ -f "$corpus" ] || "$py" bench/tokenizer_hf.py corpus "$corpus" \
  --reference "$shared/data/gemma3-tokenizer/reference.jsonl" --mb "${MB:-30}"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for run in $(seq "${RUNS:-3}"); do
  echo "--- run $run"
  eft_line=$(OMP_NUM_THREADS=$(nproc) "$out/bench_tokenizer" "$tok" "$corpus" "$out/eft-ids.txt" 3)
  echo "$eft_line"
  hf_line=$("$py" bench/tokenizer_hf.py encode --tokenizer "$tok" --corpus "$corpus" \
    --eft-ids "$out/eft-ids.txt" --repeat 2)
  echo "$hf_line"
  eft_mbs=$(echo "$eft_line" | sed -n 's/.*threads \([0-9.]*\) MB\/s (.*/\1/p')
  hf_mbs=$(echo "$hf_line" | sed -n 's/.*: \([0-9.]*\) MB\/s.*/\1/p')
  awk -v e="$eft_mbs" -v h="$hf_mbs" 'BEGIN { printf "ratio: eft/hf = %.1fx\n", e / h }'
done

# One core each (the other core of this shared machine is often busy): eft's 1-thread figure is
# in the eft lines above; HF with one Rayon thread here.
echo "--- one thread each"
OMP_NUM_THREADS=1 "$out/bench_tokenizer" "$tok" "$corpus" "" 3 | sed -n 's/.*\(1 thread [0-9.]* MB\/s\).*/eft: \1/p'
RAYON_NUM_THREADS=1 "$py" bench/tokenizer_hf.py encode --tokenizer "$tok" --corpus "$corpus" |
  sed 's/^hf:/hf, 1 thread:/'

echo "--- eft tokenize (JSONL in, JSONL out, load included)"
start=$(date +%s.%N)
build/eft tokenize --tokenizer "$tok" <"$corpus" >/dev/null
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v f="$(stat -c %s "$corpus")" \
  'BEGIN { printf "eft tokenize: %.2f s for %.1f MB of JSONL: %.2f MB/s\n", e - s, f / 1e6, f / 1e6 / (e - s) }'
