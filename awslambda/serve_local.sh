#!/usr/bin/env bash
# Serve built Lambda zips on a local Invoke endpoint, in the foreground:
#   awslambda/serve_local.sh [--port 9001] NAME=ZIP [NAME=ZIP ...]
#   e.g. awslambda/serve_local.sh chunk_read=dist/chunk_read.zip
# Workers run the functions' runtime, python3.12 (.venv-lambda312, made by ./testall.sh,
# or LAMBDA_RUNTIME_PYTHON). Point clients at it with AWS_LAMBDA_GATEWAY or
# AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:9001.
set -euo pipefail
cd "$(dirname "$0")/.."
runtime=${LAMBDA_RUNTIME_PYTHON:-}
[ -n "$runtime" ] || { [ -x .venv-lambda312/bin/python ] && runtime=$PWD/.venv-lambda312/bin/python; } || true
[ -n "$runtime" ] || runtime=$(command -v python3.12 || true)
[ -n "$runtime" ] || { echo "serve_local.sh: no python3.12 runtime found" >&2; exit 1; }
export LAMBDA_RUNTIME_PYTHON=$runtime
exec .venv/bin/python awslambda/local_invoke.py "$@"
