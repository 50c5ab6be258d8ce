#!/usr/bin/env bash
# Many small files through git-annex: `git annex get -J8` of N x 4 KiB files through the
# swarm remote (--sameas the origin repository, served by its node), next to the same
# clone getting them from the origin as a local-path git remote, in one run; then the
# warm latency of `annex-swarm get` of one 4 KiB key, p50 and p90.
#   bench/small_files_bench.sh [--build build] [--files 1000] [--runs 3] [--jobs 8]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BUILD=build
FILES=1000
RUNS=3
JOBS=8
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--files N] [--runs N] [--jobs N]" >&2; exit 2 ;;
  esac
done
bench_setup "$BUILD" small-files-bench

echo "== $FILES files of 4 KiB in $W"
mkdir -p "$W/origin"
(cd "$W/origin" && git init -q && git annex init -q origin &&
 for i in $(seq 1 "$FILES"); do head -c 4096 /dev/urandom > "f$i"; done &&
 git annex add -q . && git commit -qm files)
git clone -q "$W/origin" "$W/clone"
(cd "$W/clone" && git annex init -q clone)

TOKEN=$("$BIN" swarm new)
start() {  # name, args...
  local name=$1
  shift
  "$BIN" daemon --state-dir "$W/$name" --swarm "$TOKEN" --listen 127.0.0.1 --lan-discovery off --port 0 \
    --poll-interval 1s "$@" >"$W/$name.log" 2>&1 &
  PIDS+=($!)
  until "$BIN" status --state-dir "$W/$name" >/dev/null 2>&1; do sleep 0.05; done
}
start first --bootstrap none
BOOT="127.0.0.1:$("$BIN" status --json --state-dir "$W/first" | sed -n 's/.*"port": \([0-9]*\).*/\1/p' | head -1)"
start origin --bootstrap "$BOOT" --repo "$W/origin"
start client --bootstrap "$BOOT"
ORIGIN_UUID=$(cd "$W/origin" && git config annex.uuid)
until "$BIN" discover "$ORIGIN_UUID" --state-dir "$W/client" >/dev/null 2>&1; do sleep 0.2; done
(cd "$W/clone" && git annex initremote -q swarm type=external externaltype=swarm swarm="$TOKEN" encryption=none \
   statedir="$W/client" --sameas=origin >/dev/null)

echo "== git annex get -J$JOBS of $FILES files, alternating: local-path remote, swarm remote"
local_rates=() swarm_rates=()
for run in $(seq 1 "$RUNS"); do
  for from in origin swarm; do
    (cd "$W/clone" && git annex drop -q --force . >/dev/null 2>&1 || true)
    s=$(now)
    (cd "$W/clone" && git annex get -q -J"$JOBS" --from "$from" . >/dev/null)
    e=$(now)
    got=$(cd "$W/clone" && git annex find --in here | wc -l)
    [ "$got" -eq "$FILES" ] || { echo "only $got of $FILES files arrived from $from" >&2; exit 1; }
    rate=$(awk -v n="$FILES" -v s="$s" -v e="$e" 'BEGIN {printf "%.1f", n / (e - s)}')
    echo "   run $run from $from: $rate files/s"
    if [ "$from" = origin ]; then local_rates+=("$rate"); else swarm_rates+=("$rate"); fi
  done
done
lm=$(printf '%s\n' "${local_rates[@]}" | median)
sm=$(printf '%s\n' "${swarm_rates[@]}" | median)
echo "   medians: local-path remote $lm files/s, swarm remote $sm files/s, ratio $(awk -v a="$sm" -v b="$lm" 'BEGIN {printf "%.2f", a / b}')"

echo "== warm latency of annex-swarm get of one 4 KiB key (200 gets of 200 keys)"
KEYS=$(cd "$W/origin" && git annex find --format='${key}\n' | head -200)
for k in $KEYS; do "$BIN" get "$k" --to "$W/warm" --state-dir "$W/client" >/dev/null 2>&1; rm -f "$W/warm"; done
lat=()
# Clock reads from bash itself ($EPOCHREALTIME): a `date` process per reading would add
# its own start to every figure.
for k in $KEYS; do
  s=$EPOCHREALTIME
  "$BIN" get "$k" --to "$W/one" --state-dir "$W/client" >/dev/null 2>&1
  e=$EPOCHREALTIME
  rm -f "$W/one"
  lat+=("$(awk -v s="$s" -v e="$e" 'BEGIN {printf "%.2f", (e - s) * 1000}')")
done
echo "   p50 $(printf '%s\n' "${lat[@]}" | percentile 50) ms, p90 $(printf '%s\n' "${lat[@]}" | percentile 90) ms"
s=$EPOCHREALTIME; "$BIN" status --state-dir "$W/client" >/dev/null; e=$EPOCHREALTIME
echo "   (the same CLI process start: $(awk -v s="$s" -v e="$e" 'BEGIN {printf "%.2f", (e - s) * 1000}') ms for a status)"
