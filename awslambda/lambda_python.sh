#!/usr/bin/env bash
# Print the interpreter that runs our Lambda functions locally: python3.12 (the
# runtime's version) in a venv with boto3 (what the runtime ships), made on first use.
#   awslambda/lambda_python.sh          the venv's python (LAMBDA_VENV, default .venv-lambda312)
#   awslambda/lambda_python.sh --base   a plain python3.12, no venv (build.sh's bytecode)
# LAMBDA_RUNTIME_PYTHON, when set, is the runtime itself and is printed as is.
# Every candidate is really run: a pyenv shim for an inactive version exits 127.
set -euo pipefail
cd "$(dirname "$0")/.."
me=awslambda/lambda_python.sh
runs() { "$1" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; }

if [ -n "${LAMBDA_RUNTIME_PYTHON:-}" ]; then
  "$LAMBDA_RUNTIME_PYTHON" -c '' >/dev/null 2>&1 \
    || { echo "$me: LAMBDA_RUNTIME_PYTHON=$LAMBDA_RUNTIME_PYTHON does not run" >&2; exit 1; }
  echo "$LAMBDA_RUNTIME_PYTHON"; exit 0
fi
venv=${LAMBDA_VENV:-$PWD/.venv-lambda312}
if [ "${1:-}" != --base ] && "$venv/bin/python" -c 'import boto3' >/dev/null 2>&1; then
  echo "$venv/bin/python"; exit 0
fi

# every python3.12 on PATH (a shim may stand before a real one), pyenv's (newest first), uv's
IFS=: read -ra dirs <<< "${PATH:-}"
cands=("${dirs[@]/%//python3.12}")
cands+=($(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV || true))
command -v uv >/dev/null && cands+=("$(uv python find 3.12 2>/dev/null || true)")
base=""
for py in "${cands[@]}"; do
  # the real interpreter behind a working shim, so the venv does not depend on the shim
  if [ -x "$py" ] && runs "$py"; then base=$("$py" -c 'import sys; print(sys.executable)'); break; fi
done
if [ -z "$base" ]; then
  cat >&2 <<EOF
$me: no python3.12 found; the Lambda runtime is Python 3.12 and the local endpoint
runs the built zips with it. Install one, e.g.:
  pyenv install 3.12                         (found in \$PYENV_ROOT/versions, no need to activate it)
  apt-get install python3.12 python3.12-venv (Debian/Ubuntu; deadsnakes PPA on older Ubuntu)
  uv python install 3.12
or set LAMBDA_RUNTIME_PYTHON=/path/to/python3.12.
EOF
  exit 1
fi
[ "${1:-}" = --base ] && { echo "$base"; exit 0; }
echo "setting up $venv ($base + boto3, as the Lambda runtime has)..." >&2
{ "$base" -m venv --clear "$venv" && "$venv/bin/python" -m pip install -q boto3 >&2; } \
  || { echo "$me: could not make $venv with $base (Debian: apt-get install python3.12-venv)" >&2; exit 1; }
echo "$venv/bin/python"
