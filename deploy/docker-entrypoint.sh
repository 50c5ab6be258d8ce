#!/bin/sh
# Turns ANNEX_SWARM_<NAME>=value environment variables into daemon settings
# (--name value; list settings take several space-separated values), reads the config
# file when one is mounted, and runs the node in the foreground as PID 1's child-free
# replacement (exec), so SIGTERM reaches it directly.
#
# Swarm tokens never go on the command line (any local user can read it in ps):
#  - a secret file mounted at /run/secrets/annex-swarm-token (compose `secrets:`), or
#    ANNEX_SWARM_SWARM_FILE=PATH, is passed as --swarm-file;
#  - ANNEX_SWARM_SWARM=TOKEN still works, but the environment shows in `docker inspect`:
#    the token is written to a 0600 file in the state directory and passed by its path.
set -eu
state=${ANNEX_SWARM_STATE_DIR:-/state}
set -- daemon "$@"
[ -f /etc/annex-swarm/annex-swarm.conf ] && set -- "$@" --config /etc/annex-swarm/annex-swarm.conf
if [ -f /run/secrets/annex-swarm-token ] && [ -z "${ANNEX_SWARM_SWARM_FILE:-}" ]; then
  set -- "$@" --swarm-file /run/secrets/annex-swarm-token
fi
for assignment in $(env | grep '^ANNEX_SWARM_' | cut -d= -f1); do
  name=$(echo "${assignment#ANNEX_SWARM_}" | tr 'A-Z_' 'a-z-')
  eval "values=\${$assignment}"
  case "$name" in
    remote-trace|remote-async|control-timeout) continue ;;  # the clients' own variables
    swarm)
      echo "annex-swarm: ANNEX_SWARM_SWARM shows in 'docker inspect'; prefer a secret file (see deploy/compose.yaml)" >&2
      mkdir -p "$state"
      tokens="$state/swarm-tokens.from-env"
      (umask 077 && printf '%s\n' $values >"$tokens")
      set -- "$@" --swarm-file "$tokens"
      continue ;;
  esac
  for value in $values; do set -- "$@" "--$name" "$value"; done
done
exec annex-swarm "$@"
