#!/usr/bin/env bash
# A replicated store filling itself (issue 17's figures), in one run:
#   1. one `git annex copy --to` of a --size-mib object (default 256) from a laptop's node to
#      a swarm store whose signed rules ask for --copies copies (default 5) on five keepers;
#      the laptop and every keeper can upload --cap bytes/s (default 25 MiB/s). Time until
#      every keeper holds a complete copy, next to one copy's time through one capped
#      uplink (size / cap), and the bytes the laptop's node sent;
#   2. the same object copied with five sequential `git annex copy --to` runs to five rsync
#      special remotes, each upload held to the same cap (rsync --bwlimit).
#   bench/swarm_fill_bench.sh [--build build] [--size-mib 256] [--cap 25M] [--copies 5]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BUILD=build
SIZE_MIB=256
CAP=26214400  # 25 MiB/s, as in the other benches
COPIES=5
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --cap) CAP=$2; shift 2 ;;
    --copies) COPIES=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--size-mib N] [--cap BYTES/S] [--copies N]" >&2; exit 2 ;;
  esac
done
for tool in git-annex gpg rsync; do
  command -v "$tool" >/dev/null || { echo "swarm_fill_bench: $tool is missing" >&2; exit 2; }
done
bench_setup "$BUILD" swarm-fill-bench
BYTES=$((SIZE_MIB << 20))

echo "== a signing key for the swarm rules (throwaway, in $W/gnupg)"
export GNUPGHOME="$W/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "Bench <bench@example.org>" ed25519 sign never 2>/dev/null
ADMIN=$(gpg --batch --with-colons --fingerprint bench@example.org | awk -F: '/^fpr/ {print $10; exit}')

echo "== six nodes: a laptop and $COPIES keepers, each uploading at most $CAP B/s"
BASE=$((40000 + RANDOM % 20000))
SWARM=$("$BIN" swarm new)
common=(--rules-admin "$ADMIN" --rules-check 1s --replicate-interval 2s --upload-rate "$CAP")
daemon first $BASE --bootstrap none --store-space 0
wait_for 20 "$BIN" status --state-dir "$W/state-first"
daemon laptop $((BASE + 1)) --bootstrap 127.0.0.1:$BASE --store-space 0 "${common[@]}"
for i in $(seq 1 "$COPIES"); do
  daemon "keeper$i" $((BASE + 1 + i)) --bootstrap 127.0.0.1:$BASE --store-space $((SIZE_MIB * 2))M "${common[@]}"
done
for i in $(seq 1 "$COPIES"); do wait_for 20 "$BIN" status --state-dir "$W/state-keeper$i"; done
node_id() { "$BIN" status --json --state-dir "$W/state-$1" | tr -d ' \n' | grep -o '"node":"[0-9a-f]*"' | head -1 | cut -d'"' -f4; }
served() { "$BIN" status --json --state-dir "$W/state-$1" | tr -d ' \n' | grep -o '"bytes_served":[0-9]*' | cut -d: -f2; }

mkdir -p "$W/repo"
cd "$W/repo"
git init -q && git annex init -q laptop
head -c "$BYTES" /dev/urandom > big.bin
git annex add -q big.bin && git commit -qm big
KEY=$(git annex lookupkey big.bin)
git annex initremote -q swarm type=external externaltype=swarm statedir="$W/state-laptop" encryption=none >/dev/null
UUID=$(git config remote.swarm.annex-uuid)

group=""
for i in $(seq 1 "$COPIES"); do group="$group $(node_id "keeper$i")"; done
cat > "$W/rules" <<EOF
version = 1
expires = 2099-01-01
admin = $ADMIN
group.keepers =$group
store.$UUID.copies = $COPIES
store.$UUID.keep-on = keepers
store.$UUID.grace = 10m
EOF
gpg --batch --quiet --clearsign --local-user "$ADMIN" --output "$W/rules.asc" "$W/rules"
"$BIN" rules push "$W/rules.asc" --state-dir "$W/state-laptop" >/dev/null
holds_rules() {
  for i in $(seq 1 "$COPIES"); do
    "$BIN" rules show --json --state-dir "$W/state-keeper$i" | grep -q '"version": *1' || return 1
  done
}
wait_for 60 holds_rules
complete_copies() {
  local n=0
  for i in $(seq 1 "$COPIES"); do
    find "$W/state-keeper$i/stores/$UUID/annex/objects" -name "$KEY" -type f 2>/dev/null | grep -q . && n=$((n + 1))
  done
  echo "$n"
}
all_copies() { [ "$(complete_copies)" -ge "$COPIES" ]; }

echo "== 1. one git annex copy --to swarm; the keepers fill the store"
s0=$(served laptop)
t0=$(now)
git annex copy -q --to swarm big.bin
t_copy=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')
wait_for 3600 all_copies
t_fill=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')
sent=$(($(served laptop) - s0))
t_one=$(awk -v b="$BYTES" -v c="$CAP" 'BEGIN {print b / c}')
for i in $(seq 1 "$COPIES"); do
  f=$(find "$W/state-keeper$i/stores/$UUID/annex/objects" -name "$KEY" -type f)
  cmp -s "$f" big.bin || { echo "keeper$i holds other bytes" >&2; exit 1; }
done
printf '   git annex copy --to swarm returned after %.1f s\n' "$t_copy"
printf '   %d complete copies after %.1f s; one copy through one capped uplink takes %.1f s: %.2fx\n' \
  "$COPIES" "$t_fill" "$t_one" "$(awk -v a="$t_fill" -v b="$t_one" 'BEGIN {print a / b}')"
printf '   the laptop sent %d bytes: %.2fx the object\n' "$sent" "$(awk -v a="$sent" -v b="$BYTES" 'BEGIN {print a / b}')"

echo "== 2. five sequential git annex copy --to rsync remotes, each upload capped the same"
KIB=$((CAP / 1024))
for i in $(seq 1 "$COPIES"); do
  mkdir -p "$W/rsync$i"
  git annex initremote -q "r$i" type=rsync rsyncurl="$W/rsync$i" encryption=none >/dev/null
  git config "remote.r$i.annex-rsync-upload-options" "--bwlimit=$KIB"
done
t0=$(now)
for i in $(seq 1 "$COPIES"); do git annex copy -q --to "r$i" big.bin; done
t_seq=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')
printf '   %d sequential copies took %.1f s (%.2fx one copy), %d bytes sent (%dx the object)\n' \
  "$COPIES" "$t_seq" "$(awk -v a="$t_seq" -v b="$t_one" 'BEGIN {print a / b}')" $((BYTES * COPIES)) "$COPIES"
printf '   the swarm filled %d copies in %.2fx the time of the sequential copies\n' "$COPIES" \
  "$(awk -v a="$t_fill" -v b="$t_seq" 'BEGIN {print a / b}')"
