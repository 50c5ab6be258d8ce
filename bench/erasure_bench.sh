#!/usr/bin/env bash
# Erasure-coded stores, in one run (issue 15's figures):
#   1. the codec stage next to raw ISA-L on the same buffers (build/bench/erasure_codec_bench);
#   2. storing an object 4+2 on six holder nodes through git-annex (`git annex copy --to`):
#      time, and bytes the uploader's node served (1.5x the object), next to three whole
#      copies with `git annex copy --to` three directory remotes (3x), which survive the
#      same two losses;
#   3. retrieving it (`git annex get`) from the six holders, each capped at --cap bytes/s of
#      upload, next to the sum of the six caps.
#   bench/erasure_bench.sh [--build build] [--size-mib 1024] [--cap 25M] [--runs 3]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BUILD=build
SIZE_MIB=1024
CAP=26214400  # 25 MiB/s, as nginx's limit_rate 25m in the transfer bench
RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --cap) CAP=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--size-mib N] [--cap BYTES/S] [--runs N]" >&2; exit 2 ;;
  esac
done
bench_setup "$BUILD" erasure-bench

echo "== 1. codec stage"
"$BUILD/bench/erasure_codec_bench" --dir "$base" --object-mib 256

echo "== 2. storing a $SIZE_MIB MiB object 4+2 on six holders (each capped at $CAP B/s upload)"
BASE=$((40000 + RANDOM % 20000))
SWARM=$("$BIN" swarm new)
daemon first $BASE --bootstrap none --store-space 0
wait_for 20 "$BIN" status --state-dir "$W/state-first"
daemon laptop $((BASE + 1)) --bootstrap 127.0.0.1:$BASE --store-space 0
for i in 0 1 2 3 4 5; do
  daemon "holder$i" $((BASE + 2 + i)) --bootstrap 127.0.0.1:$BASE --store-space $((SIZE_MIB * 2))M --upload-rate "$CAP"
done
offering() {
  [ "$("$BIN" peers --json --state-dir "$W/state-laptop" | grep -c '"store_offer": [1-9]')" -ge 6 ]
}
wait_for 120 offering
served() { "$BIN" status --json --state-dir "$W/state-$1" | tr -d ' \n' | grep -o '"bytes_served":[0-9]*' | cut -d: -f2; }

mkdir -p "$W/repo"
cd "$W/repo"
git init -q && git annex init -q laptop
head -c $((SIZE_MIB << 20)) /dev/urandom > big.bin
git annex add -q big.bin && git commit -qm big
BYTES=$((SIZE_MIB << 20))
git annex initremote -q cloud type=external externaltype=swarm statedir="$W/state-laptop" encryption=none shares=4+2 >/dev/null
s0=$(served laptop)
t0=$(now)
git annex copy -q --to cloud big.bin
t_store=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')
s1=$(served laptop)
sent=$((s1 - s0))
for i in 1 2 3; do
  mkdir -p "$W/dir$i"
  git annex initremote -q "dir$i" type=directory directory="$W/dir$i" encryption=none >/dev/null
done
t0=$(now)
for i in 1 2 3; do git annex copy -q --to "dir$i" big.bin; done
t_whole=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')
echo "   4+2: $(awk -v s="$sent" -v b=$BYTES 'BEGIN {printf "%.2f", s / b}')x the object sent by the laptop's node in ${t_store} s;" \
  "three whole copies: 3.00x in ${t_whole} s"

echo "== 3. retrieving it from the six holders"
gets=()
for r in $(seq "$RUNS"); do
  git annex drop -q --force big.bin
  t0=$(now)
  git annex get -q --from cloud big.bin
  gets+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')")
  echo "   run $r: $(rate $BYTES "${gets[-1]}") MB/s"
done
# Where a get's time goes: the laptop's node logs when the shares were in and when the
# object was rebuilt; git-annex then checks and moves it.
grep -E "every segment in after|rebuilt from its shares" "$W/laptop.log" | tail -2 | sed 's/^/   last get: /'
git annex fsck -q big.bin
g=$(printf '%s\n' "${gets[@]}" | median)
echo
echo "figures ($SIZE_MIB MiB, tmpfs, loopback, $(nproc) cores, median of $RUNS gets)"
echo "  store 4+2: $(awk -v s="$sent" -v b=$BYTES 'BEGIN {printf "%.2f", s / b}')x sent, ${t_store} s; three whole copies (directory remotes): 3x, ${t_whole} s"
echo "  get from six holders capped at $CAP B/s: $(rate $BYTES "$g") MB/s = $(awk -v b=$BYTES -v s="$g" -v c="$CAP" 'BEGIN {printf "%.2f", b / s / (6 * c)}') x the sum of the six caps"
