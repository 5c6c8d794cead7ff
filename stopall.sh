#!/usr/bin/env bash
# Stop what runall.sh started: SIGTERM, wait for the data nodes to flush, nothing left.
set -euo pipefail
cd "$(dirname "$0")"
if [ "${RUN_MODE:-}" = docker ] || [ "$(cat run/mode 2>/dev/null)" = docker ]; then
  docker compose -f admin/docker/docker-compose.yml down --timeout 60
  rm -f run/mode
  exit 0
fi
if [ -x .venv/bin/python ]; then
  .venv/bin/python -m server.launch stop --run-dir run
else
  python3 -m server.launch stop --run-dir run
fi
