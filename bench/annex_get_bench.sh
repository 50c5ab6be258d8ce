#!/usr/bin/env bash
# git-annex through the swarm next to git-annex's own remotes (issue 19's figures), in one
# run on loopback, medians of --runs (default 3), alternating:
#   1. `git annex get` of a --size-mib object (default 1024) held by three nodes, through a
#      --sameas swarm remote, next to the same clone getting it from a local-path git remote
#      (a plain copy and git-annex's own verification: its ceiling) and from a directory
#      special remote;
#   2. `git annex copy --to` a swarm store, next to `git annex copy --to` a directory special
#      remote.
#   bench/annex_get_bench.sh [--build build] [--size-mib 1024] [--runs 3]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BUILD=build
SIZE_MIB=1024
RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--size-mib N] [--runs N]" >&2; exit 2 ;;
  esac
done
command -v git-annex >/dev/null || { echo "annex_get_bench: git-annex is missing" >&2; exit 2; }
bench_setup "$BUILD" annex-get-bench
BYTES=$((SIZE_MIB << 20))

echo "== a $SIZE_MIB MiB object in repository a, copies in c and d, a directory remote; clone b"
mkdir -p "$W/a"
(cd "$W/a" && git init -q && git annex init -q a && head -c "$BYTES" /dev/urandom > big.bin &&
  git annex add -q big.bin && git commit -qm big &&
  mkdir -p "$W/dir" "$W/dir2" && git annex initremote -q dir type=directory directory="$W/dir" encryption=none >/dev/null &&
  git annex copy -q --to dir big.bin)
for r in c d; do (cd "$W" && git clone -q a "$r" && cd "$r" && git annex init -q "$r" && git annex get -q big.bin); done
(cd "$W" && git clone -q a b && cd b && git annex init -q b && git annex enableremote -q dir directory="$W/dir" >/dev/null &&
  git annex initremote -q dir2 type=directory directory="$W/dir2" encryption=none >/dev/null)

echo "== four nodes: a's, c's and d's, and b's own"
BASE=$((40000 + RANDOM % 20000))
SWARM=$("$BIN" swarm new)
daemon a $BASE --bootstrap none --repo "$W/a"
wait_for 20 "$BIN" status --state-dir "$W/state-a"
daemon c $((BASE + 1)) --bootstrap 127.0.0.1:$BASE --repo "$W/c"
daemon d $((BASE + 2)) --bootstrap 127.0.0.1:$BASE --repo "$W/d"
daemon b $((BASE + 3)) --bootstrap 127.0.0.1:$BASE
wait_for 20 "$BIN" status --state-dir "$W/state-b"
KEY=$(cd "$W/a" && git annex lookupkey big.bin)
wait_for 120 sh -c "'$BIN' whereis '$KEY' --json --state-dir '$W/state-b' | tr -d ' \n' | grep -o '\"node\"' | wc -l | grep -qx 3"
(cd "$W/b" && git annex initremote -q swarm type=external externaltype=swarm swarm="$SWARM" statedir="$W/state-b" \
  encryption=none --sameas=origin >/dev/null &&
  git annex initremote -q store type=external externaltype=swarm swarm="$SWARM" statedir="$W/state-b" \
  encryption=none >/dev/null)

timed() {  # file command...: appends the seconds the command took
  local out=$1 t0
  shift
  t0=$(now)
  (cd "$W/b" && "$@" >/dev/null 2>"$W/last.err") || { echo "failed: $*"; cat "$W/last.err"; exit 1; }
  awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}' >> "$W/$out"
}

echo "== 1. git annex get, $RUNS runs each"
for i in $(seq 1 "$RUNS"); do
  for from in origin dir swarm; do
    timed "get-$from" git annex get -q --from "$from" big.bin
    (cd "$W/b" && git annex fsck -q --fast big.bin >/dev/null && git annex drop -q --force big.bin)
  done
done
for from in origin dir swarm; do
  t=$(median < "$W/get-$from")
  eval "G_$from=$t"
  printf '   %-22s %.1f MB/s (%.2f s)\n' "from $from" "$(rate "$BYTES" "$t")" "$t"
done
printf '   swarm / local-path remote: %.2fx; swarm / directory remote: %.2fx\n' \
  "$(awk -v a="$G_origin" -v b="$G_swarm" 'BEGIN {print a / b}')" "$(awk -v a="$G_dir" -v b="$G_swarm" 'BEGIN {print a / b}')"

echo "== 2. git annex copy --to, $RUNS runs each"
(cd "$W/b" && git annex get -q --from origin big.bin)
for i in $(seq 1 "$RUNS"); do
  for to in dir2 store; do
    timed "copy-$to" git annex copy -q --to "$to" big.bin
    (cd "$W/b" && git annex drop -q --force --from "$to" big.bin)
  done
done
for to in dir2 store; do
  t=$(median < "$W/copy-$to")
  eval "C_$to=$t"
  printf '   %-22s %.1f MB/s (%.2f s)\n' "to $to" "$(rate "$BYTES" "$t")" "$t"
done
printf '   swarm store / directory remote: %.2fx\n' "$(awk -v a="$C_dir2" -v b="$C_store" 'BEGIN {print a / b}')"
