#!/usr/bin/env bash
# NAT lab figures (as root): lab build and teardown time, and the time from daemon start
# to a confirmed mapped endpoint behind router 1 (UPnP IGD) and router 3 (NAT-PMP, found
# by --nat auto after UPnP finds nothing), run after run.
#   bench/nat_lab_bench.sh [--runs N] [--build DIR]     (KEEP_LOGS=1 keeps the daemons' logs)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5
build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--build DIR]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "nat_lab_bench: needs root (network namespaces)" >&2; exit 2; }
bin=$(realpath "$build/app/annex-swarm")
lab=tests/netns/nat_lab.sh
export NAT_LAB_PREFIX=asbench
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$lab" down
  if [ -n "${KEEP_LOGS:-}" ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
now() { date +%s.%N; }
confirmed_after() {  # state dir, address: seconds from start to a confirmed endpoint there
  local deadline=$((SECONDS + 90)) out
  while [ $SECONDS -lt $deadline ]; do
    out=$("$bin" status --json --state-dir "$1" 2>/dev/null || true)
    if grep -q "\"host\": \"$2\"" <<<"$(sed -n '/"confirmed"/,/"failed"/p' <<<"$out")"; then
      sed -n 's/.*"first_confirmed_after_seconds": \([0-9.]*\).*/\1/p' <<<"$out"
      return
    fi
    sleep 0.1
  done
  echo "timeout"
}
token=$("$bin" swarm new)
printf '%-4s %-9s %-22s %-22s %-9s\n' run "lab up s" "upnp: first, restart" "natpmp: first, restart" "down s"
for run in $(seq 1 "$runs"); do
  rm -rf "$work"/*
  t0=$(now); "$lab" up "$work/lab"; t1=$(now)
  for r in 1 3; do "$lab" routerd $r "$work/lab" >"$work/r$r.log" 2>&1 & pids+=($!); done
  until grep -q "Listening for NAT-PMP" "$work/r1.log" 2>/dev/null && grep -q "Listening for NAT-PMP" "$work/r3.log" 2>/dev/null; do sleep 0.05; done
  common=(--swarm "$token" --lan-discovery off)
  ip netns exec $NAT_LAB_PREFIX-pub "$bin" daemon --state-dir "$work/P" "${common[@]}" --bootstrap none --nat none >"$work/P.log" 2>&1 & pids+=($!)
  homes() {
    ip netns exec $NAT_LAB_PREFIX-h1 "$bin" daemon --state-dir "$work/H1" "${common[@]}" --bootstrap 11.0.0.10:4224 --nat upnp >>"$work/H1.log" 2>&1 & pids+=($!)
    ip netns exec $NAT_LAB_PREFIX-h3 "$bin" daemon --state-dir "$work/H3" "${common[@]}" --bootstrap 11.0.0.10:4224 --nat auto >>"$work/H3.log" 2>&1 & pids+=($!)
  }
  # First start: the node makes its identity (an RSA key) too.
  homes
  up1=$(confirmed_after "$work/H1" 11.0.0.1)
  up3=$(confirmed_after "$work/H3" 11.0.0.3)
  # Restart with the identity kept, as a home server does.
  kill "${pids[-1]}" "${pids[-2]}"
  wait "${pids[-1]}" "${pids[-2]}" 2>/dev/null || true
  unset 'pids[-1]' 'pids[-1]'
  homes
  again1=$(confirmed_after "$work/H1" 11.0.0.1)
  again3=$(confirmed_after "$work/H3" 11.0.0.3)
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  t2=$(now); "$lab" down; t3=$(now)
  printf '%-4s %-9.2f %-22s %-22s %-9.2f\n' "$run" "$(echo "$t1 - $t0" | bc)" "$(printf '%.2f, %.2f' "$up1" "$again1")" \
    "$(printf '%.2f, %.2f' "$up3" "$again3")" "$(echo "$t3 - $t2" | bc)"
done
