#!/bin/sh
# Turns ANNEX_SWARM_<NAME>=value environment variables into daemon settings
# (--name value; list settings take several space-separated values), reads the config
# file when one is mounted, and runs the node in the foreground as PID 1's child-free
# replacement (exec), so SIGTERM reaches it directly.
set -eu
set -- daemon "$@"
[ -f /etc/annex-swarm/annex-swarm.conf ] && set -- "$@" --config /etc/annex-swarm/annex-swarm.conf
for assignment in $(env | grep '^ANNEX_SWARM_' | cut -d= -f1); do
  name=$(echo "${assignment#ANNEX_SWARM_}" | tr 'A-Z_' 'a-z-')
  eval "values=\${$assignment}"
  case "$name" in
    remote-trace|remote-async) continue ;;  # the special remote's own variables
  esac
  for value in $values; do set -- "$@" "--$name" "$value"; done
done
exec annex-swarm "$@"
