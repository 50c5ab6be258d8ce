#!/usr/bin/env bash
# Runs every test case of the given Boost.Test binaries alone (--run_test=suite/case), one
# process per case, and lists those that fail: each case must pass without the others.
#   tests/run_each_alone.sh build/tests/unit_tests build/tests/loopback_get_tests ...
set -uo pipefail
failed=()
total=0
for bin in "$@"; do
  mapfile -t cases < <("$bin" --list_content 2>&1 | awk '
    /^[^ ]/ { suite = $1; sub(/\*$/, "", suite); next }
    /^    [^ ]/ { c = $1; sub(/\*$/, "", c); print suite "/" c }')
  for c in "${cases[@]}"; do
    total=$((total + 1))
    if "$bin" --run_test="$c" >/tmp/run_each_alone.log 2>&1; then
      echo "ok    $(basename "$bin") $c"
    else
      echo "FAIL  $(basename "$bin") $c"
      tail -20 /tmp/run_each_alone.log
      failed+=("$(basename "$bin") $c")
    fi
  done
done
echo "$total cases, ${#failed[@]} failed alone"
[ ${#failed[@]} -eq 0 ]
