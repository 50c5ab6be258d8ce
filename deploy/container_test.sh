#!/usr/bin/env bash
# The container as a home-server user meets it, with a real engine (docker, or podman with
# ENGINE=podman): build the image, make a token with it, serve a repository from one
# container, fetch its file from a second container and from the host (cmp), `status`
# through exec, HEALTHCHECK healthy and (DHT out of reach) unhealthy, a configuration
# mistake held instead of restart-looping, `docker stop` exiting 0, and the token in
# neither `docker inspect` nor `ps`. Run by hand (CI has no engine), as root or a docker
# group member, from the source tree:
#   deploy/container_test.sh [--no-build] [--host-bin build/app/annex-swarm]
# Prints the build time, image size and binary size.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${ENGINE:-docker}
image=annex-swarm:test
build=1
host_bin=build/app/annex-swarm
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --host-bin) host_bin=$2; shift ;;
    *) echo "usage: deploy/container_test.sh [--no-build] [--host-bin PATH]" >&2; exit 2 ;;
  esac
  shift
done
command -v "$engine" >/dev/null || { echo "no $engine here: install docker.io or podman" >&2; exit 2; }

tmp=$(mktemp -d)
prefix=ast$$
host_daemon=""
cleanup() {
  [ -n "$host_daemon" ] && kill "$host_daemon" 2>/dev/null || true
  "$engine" rm -f "$prefix-seed" "$prefix-get" "$prefix-lonely" "$prefix-held" "$prefix-locked" >/dev/null 2>&1 || true
  "$engine" network rm "$prefix-net" >/dev/null 2>&1 || true
  chmod -R u+w "$tmp" 2>/dev/null || true  # git-annex's object directories are read-only
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
await() {  # SECONDS DESCRIPTION COMMAND...: polls once a second until the command succeeds
  local limit=$1 what=$2
  shift 2
  for _ in $(seq 1 "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  fail "$what (after ${limit}s)"
}
health() { "$engine" inspect -f '{{.State.Health.Status}}' "$1"; }

if [ "$build" = 1 ]; then
  start=$(date +%s)
  "$engine" build -q -f deploy/Dockerfile -t "$image" . >/dev/null
  echo "build: $(( $(date +%s) - start )) s"
fi
echo "image: $("$engine" image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
echo "binaries: $("$engine" run --rm --entrypoint sh "$image" -c \
  'stat -c "%n %s" /usr/local/bin/annex-swarm /usr/local/bin/annex-swarm-node' | awk '{printf "%s %.1f MB; ", $1, $2/1e6}')"

# 1. Any subcommand runs as given: the token for this test's swarm.
token=$("$engine" run --rm "$image" swarm new)
[[ "$token" == swarm1-* ]] || fail "swarm new printed '$token'"
printf '%s\n' "$token" >"$tmp/token"
chmod 600 "$tmp/token"
[ "$(id -u)" = 0 ] && chown 10001 "$tmp/token" || chmod 644 "$tmp/token"  # the containers' user reads it
pass "docker run IMAGE swarm new"

# 2. A repository on the host, served read-only by a container.
repo=$tmp/repo
mkdir -p "$repo"
git -C "$repo" init -q
git -C "$repo" config user.email t@example.org
git -C "$repo" config user.name test
git -C "$repo" annex init -q container-test >/dev/null 2>&1
head -c $((6 << 20)) /dev/urandom >"$repo/photo.bin"
git -C "$repo" annex add -q photo.bin >/dev/null 2>&1
git -C "$repo" commit -q -m photo
key=$(git -C "$repo" annex lookupkey photo.bin)
chmod -R a+rX "$repo"
chmod a+x "$tmp"  # the containers' user reaches the repository and the token, nothing else
"$engine" network create "$prefix-net" >/dev/null
"$engine" run -d --name "$prefix-seed" --network "$prefix-net" --restart unless-stopped \
  -v "$repo:/repo:ro" -v "$tmp/token:/run/secrets/annex-swarm-token:ro" \
  -e ANNEX_SWARM_REPO=/repo -e ANNEX_SWARM_BOOTSTRAP=none -e ANNEX_SWARM_NAT=none \
  -p 127.0.0.1::4224/udp -p 127.0.0.1::4224/tcp "$image" >/dev/null
await 120 "the serving container never turned healthy ($(health "$prefix-seed"))" \
  sh -c "[ \"\$($engine inspect -f '{{.State.Health.Status}}' $prefix-seed)\" = healthy ]"
pass "HEALTHCHECK healthy"
"$engine" exec "$prefix-seed" annex-swarm status | grep -q "^repo .* 1 keys present" ||
  fail "docker exec annex-swarm status: $("$engine" exec "$prefix-seed" annex-swarm status 2>&1)"
pass "docker exec C annex-swarm status"

# 3. A second container fetches it.
"$engine" run -d --name "$prefix-get" --network "$prefix-net" \
  -v "$tmp/token:/run/secrets/annex-swarm-token:ro" \
  -e ANNEX_SWARM_BOOTSTRAP="$prefix-seed:4224" -e ANNEX_SWARM_NAT=none "$image" >/dev/null
await 120 "the second container never saw the key" "$engine" exec "$prefix-get" annex-swarm whereis "$key"
"$engine" exec "$prefix-get" annex-swarm get "$key" --to /state/got >/dev/null || fail "get in the second container"
"$engine" cp "$prefix-get:/state/got" "$tmp/from-container"
cmp "$repo/photo.bin" "$tmp/from-container" || fail "the second container's copy differs"
pass "fetched by a second container, cmp equal"

# 4. The host fetches it (through the published DHT port; the peer link to the
# container's bridge address).
if [ -x "$host_bin" ]; then
  dht_port=$("$engine" port "$prefix-seed" 4224/udp | head -1 | sed 's/.*://')
  "$host_bin" daemon --state-dir "$tmp/host" --bootstrap "127.0.0.1:$dht_port" --swarm-file "$tmp/token" \
    --port 0 --nat none --lan-discovery off 2>"$tmp/host.log" &
  host_daemon=$!
  await 120 "the host node never saw the key: $(tail -3 "$tmp/host.log")" "$host_bin" whereis "$key" --state-dir "$tmp/host"
  "$host_bin" get "$key" --to "$tmp/from-host" --state-dir "$tmp/host" >/dev/null || fail "get on the host"
  cmp "$repo/photo.bin" "$tmp/from-host" || fail "the host's copy differs"
  pass "fetched by the host, cmp equal"
else
  echo "skipped: the host fetch (no $host_bin; build first or pass --host-bin)"
fi

# 5. The token is in neither docker inspect nor any process's command line.
for c in "$prefix-seed" "$prefix-get"; do
  "$engine" inspect "$c" | grep -qF "$token" && fail "the token shows in '$engine inspect $c'"
done
pgrep -af -- "$token" >/dev/null && fail "the token shows in ps: $(pgrep -af -- "$token")"
pass "token in neither inspect nor ps"

# 6. Unhealthy once the DHT has been out of reach longer than the window (here 10 s).
"$engine" run -d --name "$prefix-lonely" -v "$tmp/token:/run/secrets/annex-swarm-token:ro" \
  -e ANNEX_SWARM_BOOTSTRAP=192.0.2.1:4224 -e ANNEX_SWARM_NAT=none \
  --health-cmd 'annex-swarm health --window 10s' --health-interval 2s --health-retries 2 "$image" >/dev/null
await 60 "a node without DHT peers never turned unhealthy ($(health "$prefix-lonely"))" \
  sh -c "[ \"\$($engine inspect -f '{{.State.Health.Status}}' $prefix-lonely)\" = unhealthy ]"
pass "HEALTHCHECK unhealthy when the DHT is out of reach"

# 7. A mistake restarting cannot fix: said, then held (no restart loop); an unreadable
# repository is named with the uid.
"$engine" run -d --name "$prefix-held" --restart unless-stopped -e ANNEX_SWARM_REPO=/nowhere \
  -e ANNEX_SWARM_BOOTSTRAP=none "$image" >/dev/null
await 30 "the configuration mistake was not reported" sh -c "$engine logs $prefix-held 2>&1 | grep -q 'waits instead of restarting'"
"$engine" logs "$prefix-held" 2>&1 | grep -q "repository /nowhere does not exist" || fail "the cause was not named"
[ "$("$engine" inspect -f '{{.RestartCount}} {{.State.Running}}' "$prefix-held")" = "0 true" ] ||
  fail "a configuration mistake restarted the container"
pass "configuration mistake held, not restart-looped"
mkdir -m 700 "$tmp/locked"
cp -a "$repo/." "$tmp/locked/" 2>/dev/null || true
chmod 700 "$tmp/locked"
"$engine" run -d --name "$prefix-locked" -v "$tmp/locked:/repo:ro" -e ANNEX_SWARM_REPO=/repo \
  -e ANNEX_SWARM_BOOTSTRAP=none "$image" >/dev/null
await 30 "an unreadable repository was not named with the uid: $("$engine" logs "$prefix-locked" 2>&1 | tail -2)" \
  sh -c "$engine logs $prefix-locked 2>&1 | grep -q 'uid 10001 may not read /repo'"
pass "unreadable repository named with the uid"

# 8. docker stop ends the node cleanly.
"$engine" stop "$prefix-seed" >/dev/null
[ "$("$engine" inspect -f '{{.State.ExitCode}}' "$prefix-seed")" = 0 ] ||
  fail "docker stop: exit $("$engine" inspect -f '{{.State.ExitCode}}' "$prefix-seed")"
pass "docker stop exits 0"
echo "container test passed"
