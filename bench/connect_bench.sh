#!/usr/bin/env bash
# git over the swarm (issue 18's figures), in one run on loopback, as root (Debian's sshd):
#   1. `ssh home cat > /dev/null` of --size-mib MiB (default 256) through `annex-swarm connect`
#      (ProxyCommand), next to plain ssh to the same sshd: MB/s and the ratio;
#   2. the latency of `ssh home true` through the tunnel and plain (median of --runs, default 5);
#   3. the tunnel alone: the same bytes through `annex-swarm connect` into a sink (no ssh), so
#      the tunnel's own ceiling shows apart from the CPU ssh and sshd take beside it;
#   4. relayed: the same as 1 and 3 to a second home node that advertises only a relay
#      (the test node's --test-relay-only; a third node relays), so every byte crosses it.
#   bench/connect_bench.sh [--build build] [--size-mib 256] [--runs 5]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BUILD=build
SIZE_MIB=256
RUNS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--size-mib N] [--runs N]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "connect_bench: needs root (it runs Debian's sshd)" >&2; exit 2; }
[ -x /usr/sbin/sshd ] || { echo "connect_bench: apt-get install openssh-server" >&2; exit 2; }
bench_setup "$BUILD" connect-bench

echo "== sshd on 127.0.0.1 with throwaway keys; a home node exposing it, a laptop node"
mkdir -p "$W/sshd" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$W/sshd/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$W/sshd/user_key"
cp "$W/sshd/user_key.pub" "$W/sshd/authorized_keys"
BASE=$((40000 + RANDOM % 20000))
SSH_PORT=$((BASE + 9))
cat > "$W/sshd/config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $W/sshd/host_key
PidFile $W/sshd/pid
AuthorizedKeysFile $W/sshd/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
/usr/sbin/sshd -D -e -f "$W/sshd/config" 2>"$W/sshd.log" &
PIDS+=($!)
SINK_PORT=$((BASE + 8))
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4)
while True:
    c, _ = s.accept()
    while c.recv(1 << 20): pass
    c.close()
' "$SINK_PORT" &
PIDS+=($!)
SWARM=$("$BIN" swarm new)
daemon home $BASE --bootstrap none --expose.ssh "127.0.0.1:$SSH_PORT" --expose.sink "127.0.0.1:$SINK_PORT"
wait_for 20 "$BIN" status --state-dir "$W/state-home"
HOME_ID=$("$BIN" status --json --state-dir "$W/state-home" | tr -d ' \n' | grep -o '"node":"[0-9a-f]*"' | head -1 | cut -d'"' -f4)
daemon laptop $((BASE + 1)) --bootstrap 127.0.0.1:$BASE --alias.home "$HOME_ID"
wait_for 20 "$BIN" status --state-dir "$W/state-laptop"
cat > "$W/ssh_config" <<EOF
Host tunnel
  HostName home.swarm
  ProxyCommand $BIN connect home --state-dir $W/state-laptop
Host plain
  HostName 127.0.0.1
  Port $SSH_PORT
Host *
  User root
  IdentityFile $W/sshd/user_key
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  Ciphers aes128-gcm@openssh.com
EOF
SSH=(ssh -F "$W/ssh_config")
wait_for 60 "${SSH[@]}" tunnel true
head -c $((SIZE_MIB << 20)) /dev/urandom > "$W/data"
BYTES=$((SIZE_MIB << 20))

echo "== 1. $SIZE_MIB MiB through ssh: cat > /dev/null, median of $RUNS (alternating)"
for i in $(seq 1 "$RUNS"); do
  for how in plain tunnel; do
    t0=$(now)
    "${SSH[@]}" "$how" 'cat > /dev/null' < "$W/data"
    awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}' >> "$W/thr-$how"
  done
done
for how in plain tunnel; do
  t=$(median < "$W/thr-$how")
  eval "T_$how=$t"
  printf '   %-6s %.1f MB/s (%.2f s)\n' "$how" "$(rate "$BYTES" "$t")" "$t"
done
printf '   tunnel / plain: %.2fx\n' "$(awk -v a="$T_plain" -v b="$T_tunnel" 'BEGIN {print a / b}')"

echo "== 2. ssh true, median of $RUNS"
for how in plain tunnel; do
  for i in $(seq 1 "$RUNS"); do
    t0=$(now)
    "${SSH[@]}" "$how" true
    awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}'
  done > "$W/lat-$how"
  printf '   %-6s %.3f s\n' "$how" "$(median < "$W/lat-$how")"
done

# A second home node reached only through a relay (its contact record lists the relay's
# circuit, nothing direct): it holds a reservation on the relay node.
TESTBIN=$(realpath "$BUILD/tests/annex-swarm-test-node")
daemon relay $((BASE + 2)) --bootstrap 127.0.0.1:$BASE --relay on
"$TESTBIN" --test-relay-only on daemon --state-dir "$W/state-far" --port $((BASE + 3)) --listen 127.0.0.1 \
  --swarm "$SWARM" --poll-interval 1s --lan-discovery off --bootstrap 127.0.0.1:$BASE \
  --expose.ssh "127.0.0.1:$SSH_PORT" --expose.sink "127.0.0.1:$SINK_PORT" 2>"$W/far.log" &
PIDS+=($!)
wait_for 60 grep -q "reachable through relay" "$W/far.log"
FAR_ID=$("$BIN" status --json --state-dir "$W/state-far" | tr -d ' \n' | grep -o '"node":"[0-9a-f]*"' | head -1 | cut -d'"' -f4)
printf 'Host relayed\n  HostName far.swarm\n  ProxyCommand %s connect %s --state-dir %s\n' \
  "$BIN" "$FAR_ID" "$W/state-laptop" >> "$W/ssh_config"
wait_for 60 "${SSH[@]}" relayed true

echo "== 3. $SIZE_MIB MiB through the tunnel alone (connect into a sink, no ssh), median of $RUNS"
for i in $(seq 1 "$RUNS"); do
  t0=$(now)
  "$BIN" connect home sink --state-dir "$W/state-laptop" < "$W/data"
  awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}'
done > "$W/thr-alone"
t=$(median < "$W/thr-alone")
printf '   tunnel %.1f MB/s (%.2f s)\n' "$(rate "$BYTES" "$t")" "$t"

echo "== 4. relayed: $SIZE_MIB MiB through ssh and through the tunnel alone, median of $RUNS"
for i in $(seq 1 "$RUNS"); do
  t0=$(now)
  "${SSH[@]}" relayed 'cat > /dev/null' < "$W/data"
  awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}' >> "$W/thr-relayed"
  t0=$(now)
  "$BIN" connect "$FAR_ID" sink --state-dir "$W/state-laptop" < "$W/data"
  awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}' >> "$W/thr-relayed-alone"
done
t=$(median < "$W/thr-relayed")
printf '   ssh relayed    %.1f MB/s (%.2f s), %.2fx plain ssh\n' "$(rate "$BYTES" "$t")" "$t" \
  "$(awk -v a="$T_plain" -v b="$t" 'BEGIN {print a / b}')"
t=$(median < "$W/thr-relayed-alone")
printf '   tunnel relayed %.1f MB/s (%.2f s)\n' "$(rate "$BYTES" "$t")" "$t"
