#!/usr/bin/env bash
# Serve built Lambda zips on a local Invoke endpoint, in the foreground:
#   awslambda/serve_local.sh [--port 9001] NAME=ZIP [NAME=ZIP ...]
#   e.g. awslambda/serve_local.sh chunk_read=dist/chunk_read.zip
# Workers run the functions' runtime, python3.12 in .venv-lambda312 (made here on first
# use by lambda_python.sh; LAMBDA_RUNTIME_PYTHON overrides). Point clients at it with
# AWS_LAMBDA_GATEWAY or AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:9001.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "serve_local.sh: no .venv here; ./runall.sh makes it" >&2; exit 1; }
# not python3.12 from PATH: there it may be a pyenv shim that exits 127 in every worker
LAMBDA_RUNTIME_PYTHON=$(awslambda/lambda_python.sh)
export LAMBDA_RUNTIME_PYTHON
exec .venv/bin/python awslambda/local_invoke.py "$@"
