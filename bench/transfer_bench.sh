#!/usr/bin/env bash
# Issue-3 figures: annex-swarm's multi-source download next to aria2c and curl, in one
# run, on loopback, with a 256 MiB object in tmpfs.
#   1. four seeders capped at 25 MB/s each vs aria2c from four nginx capped with limit_rate 25m;
#   2. one uncapped seeder vs curl over HTTPS (TLS 1.3) from nginx;
#   3. peak RSS of the downloading daemon;
#   4. a sparse object of --large-gib GiB (default 20, 0 skips it; a VM image as a user adds
#      one) fetched end to end onto disk (--large-dir, default /var/tmp): its rate and the
#      peak RSS of a downloading daemon started for it alone.
# Each figure of 1 and 2 is the median of --runs runs (default 3).
# Usage: bench/transfer_bench.sh [--bin build/app/annex-swarm] [--size-mib 256] [--runs 3]
#                                [--large-gib 20] [--large-dir /var/tmp]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BIN=build/app/annex-swarm
SIZE_MIB=256
RUNS=3
LARGE_GIB=20
LARGE_DIR=/var/tmp
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --large-gib) LARGE_GIB=$2; shift 2 ;;
    --large-dir) LARGE_DIR=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BIN=$(realpath "$BIN")
for tool in git-annex nginx aria2c curl openssl; do
  command -v "$tool" >/dev/null || { echo "transfer_bench: $tool is missing (apt-get install nginx aria2 curl)" >&2; exit 2; }
done

W=$(mktemp -d /dev/shm/annex-swarm-bench.XXXXXX)
chmod 755 "$W"  # nginx workers run as nobody
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$W"
  [ -n "${L:-}" ] && rm -rf "$L"
}
trap cleanup EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.org GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.org

BASE=$((40000 + RANDOM % 20000))

echo "== preparing a ${SIZE_MIB} MiB object in $W"
mkdir -p "$W/repo0" "$W/www"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$W/repo0/big.bin"
BYTES=$((SIZE_MIB << 20))
(cd "$W/repo0" && git init -q && git annex init -q bench0 && git annex add -q big.bin && git commit -qm big)
KEY=$(cd "$W/repo0" && git annex lookupkey big.bin)
OBJ=$(cd "$W/repo0" && realpath "$(git annex contentlocation "$KEY")")
ln "$OBJ" "$W/www/big.bin"
for i in 1 2 3; do
  git clone -q "$W/repo0" "$W/repo$i"
  (cd "$W/repo$i" && git annex init -q "bench$i")
  rel=$(cd "$W/repo0" && git annex contentlocation "$KEY")
  mkdir -p "$(dirname "$W/repo$i/$rel")"
  ln "$OBJ" "$W/repo$i/$rel"
done

SWARM=$("$BIN" swarm new)
CAP=26214400  # nginx's "limit_rate 25m" is 25 MiB/s; our K/M/G are powers of 1000
providers_at_least() {
  [ "$("$BIN" whereis "$KEY" --json --state-dir "$W/state-down" | grep -o '"node"' | wc -l)" -ge "$1" ]
}

daemon first $BASE --bootstrap none
wait_for 20 "$BIN" status --state-dir "$W/state-first"
for i in 0 1 2 3; do daemon "seed$i" $((BASE + 1 + i)) --bootstrap 127.0.0.1:$BASE --repo "$W/repo$i" --upload-rate "$CAP"; done
daemon down $((BASE + 9)) --bootstrap 127.0.0.1:$BASE
wait_for 20 "$BIN" status --state-dir "$W/state-down"
wait_for 120 providers_at_least 4

# Runs "$@" and prints how many seconds it took; then checks that FILE is the object.
timed_fetch() {  # who file command...
  local who=$1 file=$2 t0 t1
  shift 2
  t0=$(now)
  "$@" >/dev/null 2>"$W/fetch.err" || { echo "$who failed:" >&2; cat "$W/fetch.err" >&2; exit 1; }
  t1=$(now)
  # CPU seconds of the fetching command itself (this subshell's waited-for children).
  awk -v t="$(getconf CLK_TCK)" '{print ($16 + $17) / t}' "/proc/$BASHPID/stat" > "$W/fetch.cpu"
  cmp -s "$file" "$W/www/big.bin" || { echo "$who produced a different file" >&2; exit 1; }
  awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}'
}
# CPU seconds (user + system) a process has used so far.
cpu_of() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
nginx_worker() { pgrep -P "$(cat "$W/nginx.pid")" | head -1; }
swarm_get() {
  rm -f "$W/got" "$W/got.part" "$W/got.part.chunks"
  timed_fetch annex-swarm "$W/got" "$BIN" get "$KEY" --to "$W/got" --state-dir "$W/state-down"
}

echo "== nginx: four servers capped at 25 MB/s, one HTTPS (TLS 1.3) uncapped"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 1 \
  -keyout "$W/tls.key" -out "$W/tls.crt" 2>/dev/null
{
  echo "pid $W/nginx.pid; error_log $W/nginx.err; worker_processes 1; daemon on;"
  echo "events {} http { access_log off; sendfile on; client_body_temp_path $W/ngx; proxy_temp_path $W/ngx;"
  echo " fastcgi_temp_path $W/ngx; uwsgi_temp_path $W/ngx; scgi_temp_path $W/ngx;"
  # aria2c counts connections per host name, so each server gets its own loopback address.
  for i in 1 2 3 4; do echo " server { listen 127.0.0.1$i:$((BASE + 10 + i)); root $W/www; limit_rate 25m; }"; done
  echo " server { listen 127.0.0.1:$((BASE + 20)) ssl; root $W/www; ssl_protocols TLSv1.3;"
  echo "   ssl_certificate $W/tls.crt; ssl_certificate_key $W/tls.key; }"
  echo "}"
} > "$W/nginx.conf"
mkdir -p "$W/ngx"
nginx -c "$W/nginx.conf" -p "$W" 2>/dev/null
wait_for 10 test -f "$W/nginx.pid"

aria_get() {
  rm -f "$W/aria.bin"
  timed_fetch aria2c "$W/aria.bin" aria2c -q -d "$W" -o aria.bin --split=4 --max-connection-per-server=1 \
    --min-split-size=1M --file-allocation=none --allow-overwrite=true \
    http://127.0.0.11:$((BASE + 11))/big.bin http://127.0.0.12:$((BASE + 12))/big.bin \
    http://127.0.0.13:$((BASE + 13))/big.bin http://127.0.0.14:$((BASE + 14))/big.bin
}
curl_get() {
  timed_fetch curl "$W/curl.bin" curl -sk --tlsv1.3 -o "$W/curl.bin" https://127.0.0.1:$((BASE + 20))/big.bin
}

echo "== 1. four seeders at 25 MiB/s each (ideal 104.9 MB/s)"
cold1=$(swarm_get)
echo "   cold run (seeders hash the manifest first): annex-swarm $(rate $BYTES "$cold1") MB/s"
ours=(); theirs=()
for r in $(seq "$RUNS"); do
  ours+=("$(swarm_get)"); theirs+=("$(aria_get)")
  echo "   run $r: annex-swarm $(rate $BYTES "${ours[-1]}") MB/s, aria2c $(rate $BYTES "${theirs[-1]}") MB/s"
done
s1=$(printf '%s\n' "${ours[@]}" | median); a1=$(printf '%s\n' "${theirs[@]}" | median)

echo "== 2. one uncapped seeder vs curl+nginx over HTTPS"
kill "$PID_seed0" "$PID_seed1" "$PID_seed2" "$PID_seed3"
wait "$PID_seed0" "$PID_seed1" "$PID_seed2" "$PID_seed3" 2>/dev/null || true
daemon seed0 $((BASE + 1)) --bootstrap 127.0.0.1:$BASE --repo "$W/repo0"
wait_for 20 "$BIN" status --state-dir "$W/state-seed0"
cold2=$(swarm_get)
echo "   cold run (freshly started seeder): annex-swarm $(rate $BYTES "$cold2") MB/s"
ours=(); theirs=()
ncpu=(); dcpu=(); scpu=(); ccpu=()
for r in $(seq "$RUNS"); do
  d0=$(cpu_of "$PID_down"); e0=$(cpu_of "$PID_seed0")
  ours+=("$(swarm_get)")
  dcpu+=("$(awk -v a="$d0" -v b="$(cpu_of "$PID_down")" -v x="$(cat "$W/fetch.cpu")" 'BEGIN {print b - a + x}')")
  scpu+=("$(awk -v a="$e0" -v b="$(cpu_of "$PID_seed0")" 'BEGIN {print b - a}')")
  n0=$(cpu_of "$(nginx_worker)")
  theirs+=("$(curl_get)")
  ncpu+=("$(awk -v a="$n0" -v b="$(cpu_of "$(nginx_worker)")" 'BEGIN {print b - a}')")
  ccpu+=("$(cat "$W/fetch.cpu")")
  echo "   run $r: annex-swarm $(rate $BYTES "${ours[-1]}") MB/s, curl+nginx $(rate $BYTES "${theirs[-1]}") MB/s"
done
s2=$(printf '%s\n' "${ours[@]}" | median); c2=$(printf '%s\n' "${theirs[@]}" | median)
# CPU seconds per GiB moved, each side (medians).
per_gib() { printf '%s\n' "$@" | median | awk -v b=$BYTES '{printf "%.2f", $1 * 1073741824 / b}'; }
cpu_line="downloader $(per_gib "${dcpu[@]}") s, seeder $(per_gib "${scpu[@]}") s; curl $(per_gib "${ccpu[@]}") s, nginx $(per_gib "${ncpu[@]}") s"
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$PID_down/status")

if [ "$LARGE_GIB" -gt 0 ]; then
  echo "== 4. a ${LARGE_GIB} GiB sparse object, one seeder, onto disk in $LARGE_DIR"
  L=$(mktemp -d "$LARGE_DIR/annex-swarm-large.XXXXXX")
  LBYTES=$((LARGE_GIB << 30))
  avail=$(df --output=avail -B1 "$L" | tail -1)
  [ "$avail" -gt $((LBYTES + (2 << 30))) ] || { echo "transfer_bench: $LARGE_DIR needs $((LARGE_GIB + 2)) GiB free" >&2; exit 1; }
  truncate -s "$LBYTES" "$L/vm.img"
  LKEY="SHA256E-s$LBYTES--$(sha256sum "$L/vm.img" | cut -d' ' -f1).img"
  mkdir -p "$L/repo"
  (cd "$L/repo" && git init -q && git annex init -q large)
  lobj="$L/repo/.git/annex/objects/$(cd "$L/repo" && git annex examinekey --format='${hashdirmixed}' "$LKEY")$LKEY/$LKEY"
  mkdir -p "$(dirname "$lobj")"
  mv "$L/vm.img" "$lobj"
  daemon seedL $((BASE + 7)) --bootstrap 127.0.0.1:$BASE --repo "$L/repo"
  daemon downL $((BASE + 8)) --bootstrap 127.0.0.1:$BASE
  wait_for 20 "$BIN" status --state-dir "$W/state-downL"
  wait_for 120 "$BIN" whereis "$LKEY" --state-dir "$W/state-downL"
  t0=$(now)
  "$BIN" get "$LKEY" --to "$L/got.img" --state-dir "$W/state-downL" >/dev/null 2>"$W/large.err" ||
    { echo "the ${LARGE_GIB} GiB get failed:" >&2; cat "$W/large.err" >&2; exit 1; }
  tl=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')
  [ "$(stat -c %s "$L/got.img")" -eq "$LBYTES" ] || { echo "the ${LARGE_GIB} GiB copy has the wrong size" >&2; exit 1; }
  hwm_large=$(awk '/VmHWM/ {print $2}' "/proc/$PID_downL/status")
  rm -rf "$L"
fi

echo
echo "figures (medians of $RUNS warm runs, ${SIZE_MIB} MiB, tmpfs, loopback, $(nproc) cores)"
echo "  4 seeders at 25 MiB/s: annex-swarm $(rate $BYTES "$s1") MB/s = $(awk -v s="$s1" -v b=$BYTES -v c=$CAP 'BEGIN {printf "%.2f", b / s / (4 * c)}') x ideal;" \
  "aria2c $(rate $BYTES "$a1") MB/s; ours/aria2c $(awk -v s="$s1" -v a="$a1" 'BEGIN {printf "%.2f", a / s}')"
echo "  1 uncapped seeder: annex-swarm $(rate $BYTES "$s2") MB/s; curl+nginx HTTPS $(rate $BYTES "$c2") MB/s;" \
  "ours/curl $(awk -v s="$s2" -v c="$c2" 'BEGIN {printf "%.2f", c / s}')"
echo "  CPU per GiB, 1 uncapped seeder: $cpu_line"
echo "  cold first runs: annex-swarm $(rate $BYTES "$cold1") MB/s (4 seeders), $(rate $BYTES "$cold2") MB/s (1 seeder)"
echo "  downloading daemon peak RSS: $((hwm / 1024)) MB"
if [ "$LARGE_GIB" -gt 0 ]; then
  echo "  ${LARGE_GIB} GiB sparse object, one seeder, to disk: $(rate $LBYTES "$tl") MB/s in ${tl%.*} s" \
    "(the seeder hashes it for the manifest while serving; get verifies the key);" \
    "downloading daemon peak RSS $((hwm_large / 1024)) MB"
fi
