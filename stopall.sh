#!/usr/bin/env bash
# Stop what runall.sh started: SIGTERM, wait for the data nodes to flush, nothing left.
set -euo pipefail
cd "$(dirname "$0")"
if [ "${RUN_MODE:-}" = docker ] || [ "$(cat run/mode 2>/dev/null)" = docker ]; then
  # SIGTERM, then up to 60 s for the DNs to flush; the network goes too
  admin/docker/compose.sh down --timeout 60
  rm -f run/mode
  # what --lambda-local started beside the containers (moto, the Invoke endpoint)
  [ -f run/moto.pid ] || [ -f run/lambda.pid ] || exit 0
fi
if [ -x .venv/bin/python ]; then
  .venv/bin/python -m server.launch stop --run-dir run
else
  python3 -m server.launch stop --run-dir run
fi
