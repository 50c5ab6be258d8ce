#!/usr/bin/env bash
# Relayed vs direct: one object fetched from a seeder dialled directly, and an object of the
# same size from a seeder that advertises only a relay (--test-relay-only), all on loopback
# in one run; the relay's CPU seconds per GB relayed.
#   bench/relay_bench.sh [--size MiB] [--runs N] [--build DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
size=256
runs=3
build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--size MiB] [--runs N] [--build DIR]" >&2; exit 2 ;;
  esac
done
bin=$(realpath "$build/app/annex-swarm")
testbin=$(realpath "$build/tests/annex-swarm-test-node")  # the node with test hooks (--test-relay-only)
base=/dev/shm
[ -w "$base" ] || base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/relay-bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
make_repo() {  # dir
  mkdir -p "$1" && (cd "$1" && git init -q . && git annex init -q bench && head -c $((size * 1048576)) /dev/urandom >obj &&
                    git annex add -q obj && git commit -qm obj && git annex lookupkey obj)
}
status_field() { "$bin" status --json --state-dir "$1" | sed -n "s/.*\"$2\": \\([0-9]*\\).*/\\1/p" | head -1; }
cpu_seconds() {  # pid: user+system CPU seconds so far
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"
}

token=$("$bin" swarm new)
relay_port=$(free_port)
start() {  # name, args...
  local name=$1 exe=$bin
  shift
  [[ " $* " == *" --test-"* ]] && exe=$testbin
  "$exe" daemon --state-dir "$work/$name" --swarm "$token" --listen 127.0.0.1 --lan-discovery off \
    --poll-interval 1s "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  until "$bin" status --state-dir "$work/$name" >/dev/null 2>&1; do sleep 0.05; done
}
direct_key=$(make_repo "$work/repo-direct")
relayed_key=$(make_repo "$work/repo-relayed")
start relay --port "$relay_port" --bootstrap none --relay on
relay_pid=${pids[-1]}
start direct --port 0 --bootstrap "127.0.0.1:$relay_port" --repo "$work/repo-direct"
start relayed --port 0 --bootstrap "127.0.0.1:$relay_port" --repo "$work/repo-relayed" --test-relay-only on
start fetcher --port 0 --bootstrap "127.0.0.1:$relay_port"
until "$bin" whereis "$direct_key" --state-dir "$work/fetcher" >/dev/null 2>&1 &&
      "$bin" whereis "$relayed_key" --state-dir "$work/fetcher" >/dev/null 2>&1 &&
      grep -q "reachable through relay" "$work/relayed.log"; do sleep 0.2; done

fetch() {  # key -> MB/s
  rm -f "$work/out"
  local out
  out=$("$bin" get "$1" --to "$work/out" --json --state-dir "$work/fetcher")
  local secs
  secs=$(sed -n 's/.*"seconds": \([0-9.e-]*\).*/\1/p' <<<"$out")
  echo "$(echo "scale=1; $size * 1.048576 / $secs" | bc)"
}
printf '%-4s %-12s %-12s %-7s %-16s\n' run "direct MB/s" "relayed MB/s" ratio "relay CPU s/GB"
for run in $(seq 1 "$runs"); do
  d=$(fetch "$direct_key")
  before_cpu=$(cpu_seconds "$relay_pid")
  before_bytes=$(status_field "$work/relay" bytes_relayed)
  r=$(fetch "$relayed_key")
  after_cpu=$(cpu_seconds "$relay_pid")
  after_bytes=$(status_field "$work/relay" bytes_relayed)
  per_gb=$(echo "scale=2; ($after_cpu - $before_cpu) / (($after_bytes - $before_bytes) / 1000000000)" | bc)
  printf '%-4s %-12s %-12s %-7s %-16s\n' "$run" "$d" "$r" "$(echo "scale=2; $r / $d" | bc)" "$per_gb"
done
