#!/usr/bin/env bash
# fuzz.sh NAME SECONDS [LIBFUZZER FLAGS...]: builds the libFuzzer targets into build-fuzz/ (clang,
# ASan + UBSan) and runs fuzz/fuzz_NAME.c for SECONDS on a writable copy of fuzz/corpus/NAME (with
# the dictionary fuzz/NAME.dict when there is one), so that what the fuzzer learns stays under
# build-fuzz/ and the committed seeds stay small.
# A crash leaves its input in build-fuzz/artifacts/NAME/ and makes this script fail.
#   scripts/fuzz.sh safetensors 720
#   scripts/fuzz.sh safetensors 60 -jobs=2 -workers=2
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/fuzz.sh NAME SECONDS [LIBFUZZER FLAGS...]}
seconds=${2:?usage: scripts/fuzz.sh NAME SECONDS [LIBFUZZER FLAGS...]}
shift 2
[ -f "fuzz/fuzz_$name.c" ] || { echo "fuzz.sh: no fuzz/fuzz_$name.c" >&2; exit 1; }

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release -DEFT_FUZZ=ON \
      -DEFT_NATIVE=OFF >/dev/null
cmake --build build-fuzz -j 2 --target "fuzz_$name"

corpus=build-fuzz/corpus/$name
artifacts=build-fuzz/artifacts/$name
mkdir -p "$corpus" "$artifacts"
[ -d "fuzz/corpus/$name" ] && cp -n "fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null || true

dict=()
[ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"build-fuzz/fuzz_$name" "$corpus" -max_total_time="$seconds" -artifact_prefix="$artifacts/" \
    -print_final_stats=1 "${dict[@]}" "$@"
