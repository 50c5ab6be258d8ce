#!/bin/sh
# The container's entrypoint.
#
# Any annex-swarm subcommand runs as given (`docker run IMAGE swarm new`,
# `docker run IMAGE annex-swarm status`); with no arguments, or only settings
# (`--name value`), or `daemon`, it runs the node in the foreground (exec, so SIGTERM
# reaches it directly). For a shell: docker run --entrypoint sh ...
#
# The node's settings come from ANNEX_SWARM_<NAME>=value environment variables
# (--name value; list settings take several space-separated values), a config file
# mounted at /etc/annex-swarm/annex-swarm.conf, and the arguments.
#
# Swarm tokens never go on the command line (any local user can read it in ps):
#  - a secret file mounted at /run/secrets/annex-swarm-token (compose `secrets:`), or
#    ANNEX_SWARM_SWARM_FILE=PATH, is passed as --swarm-file;
#  - ANNEX_SWARM_SWARM=TOKEN still works, but the environment shows in `docker inspect`:
#    the token is written to a 0600 file in the state directory and passed by its path.
#
# A mistake that restarting cannot fix (a setting, a repository or state directory this
# user cannot read) is printed and the container then waits, unhealthy, for `docker stop`
# instead of exiting into a restart loop.
set -eu
state=${ANNEX_SWARM_STATE_DIR:-/state}
export ANNEX_SWARM_STATE_DIR="$state"  # every annex-swarm command finds this node

case "${1:-}" in
  annex-swarm|git-annex-remote-swarm) exec "$@" ;;
  daemon) shift ;;
  ""|-*) ;;
  *) exec annex-swarm "$@" ;;
esac

hold() {  # MESSAGE...: said once; then wait for docker stop instead of exiting into a restart loop
  [ $# -eq 0 ] || echo "annex-swarm: $*" >&2
  sleeper=""
  trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 78' TERM INT
  echo "annex-swarm: the node cannot start with this configuration (above); the container waits instead of" \
       "restarting. Fix it, then: docker restart CONTAINER" >&2
  while :; do
    sleep 3600 &
    sleeper=$!
    wait "$sleeper" || true
  done
}

set -- daemon "$@"
[ -f /etc/annex-swarm/annex-swarm.conf ] && set -- "$@" --config /etc/annex-swarm/annex-swarm.conf
if [ -f /run/secrets/annex-swarm-token ] && [ -z "${ANNEX_SWARM_SWARM_FILE:-}" ]; then
  set -- "$@" --swarm-file /run/secrets/annex-swarm-token
fi
for assignment in $(env | grep '^ANNEX_SWARM_' | cut -d= -f1); do
  name=$(echo "${assignment#ANNEX_SWARM_}" | tr 'A-Z_' 'a-z-')
  eval "values=\${$assignment}"
  case "$name" in
    state-dir) set -- "$@" --state-dir "$values"; continue ;;
    remote-trace|remote-async|control-timeout) continue ;;  # the clients' own variables
    swarm)
      echo "annex-swarm: ANNEX_SWARM_SWARM shows in 'docker inspect'; prefer a secret file (see deploy/compose.yaml)" >&2
      tokens="$state/swarm-tokens.from-env"
      mkdir -p "$state" 2>/dev/null && (umask 077 && printf '%s\n' $values >"$tokens") 2>/dev/null ||
        hold "cannot write $tokens: the state directory $state is not writable by uid $(id -u)" \
             "(owner uid $(stat -c %u "$state" 2>/dev/null || echo '?')); chown it to $(id -u)"
      set -- "$@" --swarm-file "$tokens"
      continue ;;
  esac
  for value in $values; do set -- "$@" "--$name" "$value"; done
done

annex-swarm "$@" --check >/dev/null || hold
exec annex-swarm "$@"
