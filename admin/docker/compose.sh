#!/usr/bin/env bash
# Run compose on h5cloud's project, whichever compose this machine has:
#   admin/docker/compose.sh ps | logs sn | down -t 60 | ...
# The v2 plugin (`docker compose`) when present, else v1 (`docker-compose`).
set -euo pipefail
file="$(cd "$(dirname "$0")" && pwd)/docker-compose.yml"
project=${H5CLOUD_PROJECT:-h5cloud}
if docker compose version >/dev/null 2>&1; then
  exec docker compose -p "$project" -f "$file" "$@"
elif command -v docker-compose >/dev/null 2>&1; then
  exec docker-compose -p "$project" -f "$file" "$@"
fi
echo "compose.sh: neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed" >&2
echo "  (Debian: apt-get install docker-compose)" >&2
exit 127
