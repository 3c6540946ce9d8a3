# check.sh: sourced by the tests in tests/cli. Needs $eft (the binary) and $tmp (a scratch
# folder); counts failures in $fails.

# check NAME EXPECTED_STATUS PATTERN... -- ARGS...: runs `eft ARGS`, and passes when it exits
# with EXPECTED_STATUS and its output (stdout and stderr) holds every PATTERN.
check() {
  local name=$1 want=$2
  shift 2
  local patterns=()
  while [ "$1" != "--" ]; do patterns+=("$1"); shift; done
  shift
  "$eft" "$@" >"$tmp/out" 2>&1
  local got=$?
  if [ "$got" != "$want" ]; then
    echo "FAIL $name: exit $got, expected $want"; cat "$tmp/out"; fails=$((fails + 1)); return
  fi
  for p in "${patterns[@]}"; do
    if ! grep -qF -- "$p" "$tmp/out"; then
      echo "FAIL $name: output lacks \"$p\""; cat "$tmp/out"; fails=$((fails + 1)); return
    fi
  done
  echo "ok   $name"
}
