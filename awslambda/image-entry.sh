#!/bin/sh
# Entry point of the hslambda container image (Dockerfile.lambda), whatever its base.
# AWS's Lambda image: its own entry point (the runtime client; outside AWS, the
# emulator that serves the Invoke API on port 8080).
if [ -x /lambda-entrypoint.sh ]; then
  exec /lambda-entrypoint.sh "$@"
fi
# Any other Python base: awslambdaric (from PyPI, in the task root), which serves the
# handler named in "$1" to the Lambda Runtime API at AWS_LAMBDA_RUNTIME_API.
export PYTHONPATH="${LAMBDA_TASK_ROOT}${PYTHONPATH:+:$PYTHONPATH}"
exec python -m awslambdaric "$@"
