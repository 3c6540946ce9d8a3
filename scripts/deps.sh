#!/usr/bin/env bash
# deps.sh: installs the Debian 12 packages eft builds against, when any is missing.
# Used by scripts/test.sh and scripts/demo.sh; safe to run again (installs nothing twice).
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang   # compilers (clang for the fuzz targets)
  libyaml-dev                  # Axolotl YAML configs
  libcjson-dev                 # config.json, tokenizer.json, safetensors headers, JSONL
  libpcre2-dev                 # lora_target_modules regexes, tokenizer split patterns
  libopenblas-openmp-dev       # fp32 GEMMs on the CPU, threaded with OpenMP
  libxxhash-dev                # cache keys and fingerprints
  libcmocka-dev                # the unit-test framework
  libomp-dev                   # OpenMP runtime for clang builds
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
