#!/usr/bin/env bash
# Installs the build into a temporary prefix and uses what was installed: the binary and
# its git-annex-remote-swarm name, `init` on a fresh git-annex repository, the daemon
# started from the written config (SIGHUP re-reads it, SIGTERM stops it cleanly), the
# README's first command (scripts/setup node) on its first run and its second, the
# systemd unit (checked by systemd-analyze when present), and the container entrypoint's
# environment-to-settings translation.
#   install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
tmp=$(mktemp -d)
daemon=""
cleanup() {
  [ -n "$daemon" ] && kill -9 "$daemon" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
await() {  # description, command...: polls the command until it succeeds (60 s at most)
  local what=$1
  shift
  for _ in $(seq 1 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "$what"
}

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
bin=$prefix/bin/annex-swarm
[ -x "$bin" ] || fail "no installed binary"
[ -x "$prefix/bin/annex-swarm-node" ] || fail "no installed node binary (annex-swarm hands it every command but lookups)"
[ -L "$prefix/bin/git-annex-remote-swarm" ] || fail "no git-annex-remote-swarm link"
first=$(echo | "$prefix/bin/git-annex-remote-swarm" | head -1)
[ "$first" = "VERSION 1" ] || fail "the installed special remote said '$first'"
"$bin" version | grep -q '^annex-swarm ' || fail "version"
[ -f "$prefix/share/annex-swarm/annex-swarm.conf.example" ] || fail "no example config"
# Every daemon setting is documented in the example config.
# (A family of settings, expose.NAME, is documented by one example of it.)
for setting in $("$bin" daemon --help | sed -n 's/^  --\([a-zA-Z.-]*\).*/\1/p'); do
  grep -q "^#${setting/.NAME/.[a-z0-9_-]*} = " "$prefix/share/annex-swarm/annex-swarm.conf.example" ||
    fail "the example config does not document $setting"
done
grep -q '^u annex-swarm ' "$prefix/lib/sysusers.d/annex-swarm.conf" || fail "no sysusers entry for the service user"

unit=$prefix/lib/systemd/system/annex-swarm.service
grep -q "^ExecStart=$prefix/bin/annex-swarm daemon" "$unit" || fail "the unit does not run the installed binary"
if command -v systemd-analyze >/dev/null; then
  # A unit file check; the service user need not exist here.
  out=$(systemd-analyze verify "$unit" 2>&1 | grep -v -e "annex-swarm.service: Failed to resolve user" || true)
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
else
  echo "systemd-analyze not installed: unit not verified" >&2
fi

# First run on a home server: a repository, init, then the daemon from that config.
repo=$tmp/repo
mkdir -p "$repo" && (cd "$repo" && git init -q . && git config user.email t@example.org &&
                     git config user.name t && git annex init -q test && echo hello >f && git annex add -q f &&
                     git commit -qm f)
out=$(cd "$repo" && "$bin" init --no-nat --config "$tmp/etc/annex-swarm.conf" --state-dir "$tmp/state" --bootstrap none)
grep -q '^node id   [0-9a-f]\{40\}$' <<<"$out" || fail "init printed no node id: $out"
grep -q "^repo = $repo$" "$tmp/etc/annex-swarm.conf" || fail "the config does not serve the repository"
token=$(sed -n 's/^swarm = //p' "$tmp/etc/annex-swarm.conf")
grep -q "$token" <<<"$out" || fail "init did not print the token to share"
if (cd "$repo" && "$bin" init --no-nat --config "$tmp/etc/annex-swarm.conf" --state-dir "$tmp/state") 2>/dev/null; then
  fail "init overwrote an existing config"
fi

"$bin" daemon --config "$tmp/etc/annex-swarm.conf" --listen 127.0.0.1 --port 0 --poll-interval 1s \
  >"$tmp/daemon.log" 2>&1 &
daemon=$!
await "the installed daemon did not come up: $(cat "$tmp/daemon.log")" "$bin" status --state-dir "$tmp/state"
await "the repository was not scanned" grep -q "1 keys" <("$bin" status --state-dir "$tmp/state")
echo "log-level = debug" >>"$tmp/etc/annex-swarm.conf"
kill -HUP "$daemon"
await "SIGHUP did not reload" grep -q "SIGHUP: config read again .*applied: log-level" "$tmp/daemon.log"
kill -TERM "$daemon"
wait "$daemon" || fail "the daemon did not exit cleanly on SIGTERM: $(tail -5 "$tmp/daemon.log")"
daemon=""

# The README's first command on a machine with no config yet: scripts/setup node makes
# one as init does (a new swarm, the token only in the 0600 config, serving --repo) and
# starts the node; run again, it starts the same node from that config.
setup_config=$tmp/setup/annex-swarm.conf
start_setup_node() {
  ANNEX_SWARM_SETUP_PREBUILT=1 BUILD_DIR=$build "$source/scripts/setup" node --config "$setup_config" --repo "$repo" --state-dir "$tmp/setup-state" \
    --listen 127.0.0.1 --port 0 --bootstrap none --poll-interval 1s >>"$tmp/setup.log" 2>&1 &
  daemon=$!
  await "scripts/setup node did not start a node: $(tail -20 "$tmp/setup.log")" "$bin" status --state-dir "$tmp/setup-state"
}
stop_setup_node() {
  kill -TERM "$daemon"
  wait "$daemon" || fail "the node of scripts/setup did not exit cleanly: $(tail -5 "$tmp/setup.log")"
  daemon=""
}
start_setup_node
[ "$(stat -c %a "$setup_config")" = 600 ] || fail "scripts/setup node wrote a config others can read"
setup_token=$(sed -n 's/^swarm = //p' "$setup_config")
[ -n "$setup_token" ] || fail "the config of scripts/setup node names no swarm"
grep -q "$setup_token" "$tmp/setup.log" || fail "scripts/setup node did not print the token to share"
first_status=$("$bin" status --state-dir "$tmp/setup-state")
grep -q "$repo" <<<"$first_status" || fail "the node of scripts/setup node does not serve $repo: $first_status"
stop_setup_node
config_before=$(cat "$setup_config")
start_setup_node
[ "$(cat "$setup_config")" = "$config_before" ] || fail "run again, scripts/setup node changed its config"
second_status=$("$bin" status --state-dir "$tmp/setup-state")
[ "$(grep '^node ' <<<"$second_status")" = "$(grep '^node ' <<<"$first_status")" ] ||
  fail "run again, scripts/setup node started another node"
stop_setup_node

# The container entrypoint: ANNEX_SWARM_<NAME> becomes --name.
mkdir -p "$tmp/fake"
printf '#!/bin/sh\necho "$@"\n' >"$tmp/fake/annex-swarm" && chmod +x "$tmp/fake/annex-swarm"
args=$(env -i PATH="$tmp/fake:/usr/bin:/bin" ANNEX_SWARM_SWARM=tok ANNEX_SWARM_UPLOAD_RATE=10M \
       ANNEX_SWARM_STATE_DIR="$tmp/cstate" ANNEX_SWARM_BOOTSTRAP="a:1 b:2" \
       sh "$prefix/share/annex-swarm/docker-entrypoint.sh" 2>/dev/null)
for want in "daemon" "--swarm-file $tmp/cstate/swarm-tokens.from-env" "--upload-rate 10M" \
            "--bootstrap a:1 --bootstrap b:2"; do
  grep -q -- "$want" <<<"$args" || fail "entrypoint gave '$args', without '$want'"
done
# The token itself is never an argument; it is in a file only its owner reads.
for a in $args; do [ "$a" != tok ] || fail "the entrypoint put the token on the command line: '$args'"; done
[ "$(cat "$tmp/cstate/swarm-tokens.from-env")" = tok ] || fail "the entrypoint did not keep the token in its file"
[ "$(stat -c %a "$tmp/cstate/swarm-tokens.from-env")" = 600 ] || fail "the token file is readable by others"
# Any other subcommand runs as given, and finds the node through ANNEX_SWARM_STATE_DIR
# (docker run IMAGE swarm new; docker exec C annex-swarm status).
entry() { env -i PATH="$prefix/bin:/usr/bin:/bin" HOME="$tmp" ANNEX_SWARM_STATE_DIR="$tmp/cstate2" "$@"; }
entry sh "$prefix/share/annex-swarm/docker-entrypoint.sh" swarm new | grep -q '^swarm1-' || fail "entrypoint: swarm new"
said=$(entry sh "$prefix/share/annex-swarm/docker-entrypoint.sh" annex-swarm status 2>&1) && fail "status without a node"
grep -q "$tmp/cstate2" <<<"$said" || fail "status did not look for the node in ANNEX_SWARM_STATE_DIR: $said"
# A mistake restarting cannot fix: said once, then the container waits for docker stop
# (exit 78) instead of exiting into a restart loop.
env -i PATH="$prefix/bin:/usr/bin:/bin" HOME="$tmp" ANNEX_SWARM_STATE_DIR="$tmp/cstate2" ANNEX_SWARM_REPO="$tmp/not-a-repo" \
  ANNEX_SWARM_BOOTSTRAP=none sh "$prefix/share/annex-swarm/docker-entrypoint.sh" 2>"$tmp/held.err" &
held=$!
await "the entrypoint did not say it waits: $(cat "$tmp/held.err")" grep -q "waits instead of restarting" "$tmp/held.err"
grep -q "repository $tmp/not-a-repo does not exist" "$tmp/held.err" || fail "the cause was not named: $(cat "$tmp/held.err")"
kill -0 "$held" || fail "the entrypoint exited on a configuration error"
kill -TERM "$held"
rc=0
wait "$held" || rc=$?
[ "$rc" = 78 ] || fail "the held entrypoint exited $rc on SIGTERM, not 78"
# A repository the node's user may not read is named with the uid (as root: run as nobody).
if [ "$(id -u)" = 0 ]; then
  chmod 711 "$tmp"
  mkdir -p "$tmp/nobody-state" "$tmp/private-repo" && chown 65534 "$tmp/nobody-state" && chmod 700 "$tmp/private-repo"
  said=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" daemon --check --state-dir "$tmp/nobody-state" \
         --bootstrap none --repo "$tmp/private-repo" 2>&1) && fail "--check passed an unreadable repository"
  grep -q "uid 65534 may not read $tmp/private-repo (owner uid 0" <<<"$said" || fail "unreadable repository: $said"
else
  echo "not root: the unreadable-repository check (run as another uid) is skipped"
fi
echo "install test passed"
