#!/usr/bin/env bash
# Run the test suite: ./testall.sh [pytest args]
# Sets itself up on a fresh machine: .venv with the package and its test extras,
# .venv-h5pyd024 with h5pyd 0.24.0 (the older client the tests also drive), and
# .venv-hsds with stock HSDS 1.0.2 (the interoperability test starts it).
set -euo pipefail
cd "$(dirname "$0")"

stamp=$(cat setup.cfg pyproject.toml | md5sum | cut -d' ' -f1)
if [ "$(cat .venv/.installed 2>/dev/null)" != "$stamp" ]; then
  echo "setting up .venv..."
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test]'
  echo "$stamp" > .venv/.installed
fi
if ! .venv-h5pyd024/bin/python -c 'import h5pyd, boto3' >/dev/null 2>&1; then
  echo "setting up .venv-h5pyd024 (h5pyd 0.24.0)..."
  python3 -m venv .venv-h5pyd024
  .venv-h5pyd024/bin/python -m pip install -q h5pyd==0.24.0 boto3   # boto3: its http+lambda://
fi
if ! .venv-hsds/bin/python -c 'import hsds' >/dev/null 2>&1; then
  # stock HSDS 1.0.2, only to check it reads what h5cloud writes (never a dependency)
  echo "setting up .venv-hsds (hsds 1.0.2)..."
  python3 -m venv .venv-hsds
  .venv-hsds/bin/python -m pip install -q hsds==1.0.2
fi
# the Lambda runtime's interpreter (python3.12) with what the runtime ships (boto3):
# the built function zip is run by it, so wheels built for the wrong Python fail here.
# Optional: without python3.12 the Lambda tests skip. The tests use .venv-lambda312 itself,
# so LAMBDA_RUNTIME_PYTHON must not stand in for it here.
LAMBDA_RUNTIME_PYTHON="" ./awslambda/lambda_python.sh >/dev/null || echo "testall.sh: going on; the Lambda tests will skip" >&2
# the aws CLI for the deploy.sh test (against moto), in its own venv when none is installed
if ! command -v aws >/dev/null 2>&1 && ! .venv-awscli/bin/aws --version >/dev/null 2>&1; then
  echo "setting up .venv-awscli (aws CLI)..."
  python3 -m venv .venv-awscli
  .venv-awscli/bin/python -m pip install -q awscli
fi
exec .venv/bin/python -m pytest "$@"
