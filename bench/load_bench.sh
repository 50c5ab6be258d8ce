#!/usr/bin/env bash
# A popular node under load (issue 21's figures), in one run on loopback: one seeder of a
# --size-mib object (default 32) with its default peer cap (64), and N other nodes that all
# run `annex-swarm get` at the same moment, for each N in --counts (default "20 60 150"):
#   - how many finished and verified (cmp), the wall time, the aggregate rate next to one
#     downloader alone;
#   - fairness: the slowest downloader's time over the median's;
#   - the seeder's peak RSS during the round (VmHWM, reset before each round), and the
#     most members it served at once.
#   bench/load_bench.sh [--build build] [--size-mib 32] [--counts "20 60 150"] [--max-peers 64]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BUILD=build
SIZE_MIB=32
COUNTS="20 60 150"
MAX_PEERS=64
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --counts) COUNTS=$2; shift 2 ;;
    --max-peers) MAX_PEERS=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--size-mib N] [--counts \"20 60 150\"] [--max-peers N]" >&2; exit 2 ;;
  esac
done
bench_setup "$BUILD" load-bench
BYTES=$((SIZE_MIB << 20))
MOST=0
for n in $COUNTS; do [ "$n" -gt "$MOST" ] && MOST=$n; done

echo "== a seeder (--max-peers $MAX_PEERS) of a $SIZE_MIB MiB object, and $MOST other nodes"
mkdir -p "$W/repo"
(cd "$W/repo" && git init -q && git annex init -q seeder && head -c "$BYTES" /dev/urandom > popular.bin &&
  git annex add -q popular.bin && git commit -qm popular)
KEY=$(cd "$W/repo" && git annex lookupkey popular.bin)
OBJECT="$W/repo/$(cd "$W/repo" && git annex contentlocation "$KEY")"
BASE=$((20000 + RANDOM % 20000))
SWARM=$("$BIN" swarm new)
daemon seeder $BASE --bootstrap none --repo "$W/repo" --max-peers "$MAX_PEERS"
wait_for 20 "$BIN" status --state-dir "$W/state-seeder"
for i in $(seq 1 "$MOST"); do daemon "d$i" $((BASE + i)) --bootstrap 127.0.0.1:$BASE; done
for i in $(seq 1 "$MOST"); do
  wait_for 60 sh -c "'$BIN' whereis '$KEY' --json --state-dir '$W/state-d$i' | grep -q '\"node\"'"
done
field() { "$BIN" status --json --state-dir "$W/state-seeder" | tr -d ' \n' | grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2; }

# One get: its seconds (or FAILED) to $W/t-ROUND-I.
one_get() {  # round i
  local t0 rc=0
  t0=$(now)
  "$BIN" get "$KEY" --to "$W/got-$1-$2" --state-dir "$W/state-d$2" >"$W/get-$1-$2.log" 2>&1 || rc=$?
  if [ $rc = 0 ] && cmp -s "$W/got-$1-$2" "$OBJECT"; then
    awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}' > "$W/t-$1-$2"
  else
    echo FAILED > "$W/t-$1-$2"
  fi
  rm -f "$W/got-$1-$2"
}

echo "== one downloader alone"
one_get alone 1
ALONE=$(cat "$W/t-alone-1")
[ "$ALONE" != FAILED ] || { echo "the lone download failed:"; cat "$W/get-alone-1.log"; exit 1; }
printf '   %.2f s, %.1f MB/s\n' "$ALONE" "$(rate "$BYTES" "$ALONE")"

printf '\n%6s %9s %8s %10s %9s %11s %12s %10s %6s\n' N finished wall "aggregate" "vs alone" "slowest/med" "seeder peak" "max links" "busy"
for n in $COUNTS; do
  echo 5 > "/proc/$PID_seeder/clear_refs"  # VmHWM starts over
  busy_before=$(field busy_refusals)
  t0=$(now)
  for i in $(seq 1 "$n"); do one_get "n$n" "$i" & done
  wait $(jobs -p | tail -n "$n") 2>/dev/null || true
  while [ "$(ls "$W"/t-n$n-* 2>/dev/null | wc -l)" -lt "$n" ]; do sleep 0.1; done
  wall=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')
  ok=$(cat "$W"/t-n$n-* | grep -vc FAILED || true)
  times=$(cat "$W"/t-n$n-* | grep -v FAILED || true)
  med=$(echo "$times" | median)
  slowest=$(echo "$times" | sort -g | tail -1)
  peak_kb=$(awk '/VmHWM/ {print $2}' "/proc/$PID_seeder/status")
  printf '%6d %9s %7.1fs %7.1f MB/s %8.2fx %11.2fx %9d MB %10s %6s\n' "$n" "$ok/$n" "$wall" \
    "$(rate $((BYTES * ok)) "$wall")" "$(awk -v a="$(rate $((BYTES * ok)) "$wall")" -v b="$(rate "$BYTES" "$ALONE")" 'BEGIN {print a / b}')" \
    "$(awk -v s="$slowest" -v m="$med" 'BEGIN {print s / m}')" $((peak_kb / 1024)) "$(field links_open_peak)" \
    $(( $(field busy_refusals) - busy_before ))
  if [ "$ok" -lt "$n" ]; then
    for f in "$W"/t-n$n-*; do
      grep -q FAILED "$f" && { echo "   failed: ${f##*/t-}"; tail -n 3 "$W/get-${f##*/t-}.log" | sed 's/^/     /'; }
    done | head -20
  fi
done
echo "(the seeder's peak links are since its start; its RSS peak is per round)"
