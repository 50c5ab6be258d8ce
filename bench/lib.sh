# Helpers the benchmark scripts share (sourced, not run).
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
percentile() { sort -g | awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p/100); if (i<1) i=1; print a[i]}'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.1f", b / s / 1e6}'; }  # MB/s from bytes and seconds
wait_for() {  # seconds command...: runs the command until it succeeds, or gives up
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for: $*" >&2; exit 1; }
    sleep 0.2
  done
}
# A daemon on 127.0.0.1 in "$W/state-NAME" (log "$W/NAME.log"), in swarm "$SWARM", run
# by "$BIN"; its pid goes to PIDS (for cleanup) and PID_NAME.
daemon() {  # name port extra-args...
  local name=$1 port=$2
  shift 2
  "$BIN" daemon --state-dir "$W/state-$name" --port "$port" --listen 127.0.0.1 --swarm "$SWARM" \
    --poll-interval 1s --lan-discovery off "$@" 2>"$W/$name.log" &
  PIDS+=($!)
  eval "PID_$name=$!"
}

# The built annex-swarm as BIN (its directory first on PATH, for git-annex-remote-swarm), a
# scratch dir W in tmpfs (else TMPDIR; its parent as base), a git identity; on exit the
# daemons in PIDS stop and W goes.
bench_setup() {  # build-dir name
  BIN=$(realpath "$1/app/annex-swarm")
  export PATH="$(dirname "$BIN"):$PATH"
  base=/dev/shm
  [ -w "$base" ] || base=${TMPDIR:-/tmp}
  W=$(mktemp -d "$base/$2.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
  export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.org GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.org
}
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  chmod -R u+w "$W" 2>/dev/null || true
  rm -rf "$W"
}
