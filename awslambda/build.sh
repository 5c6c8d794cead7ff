#!/usr/bin/env bash
# Build a Lambda zip from a clean folder:  awslambda/build.sh [chunk_read|hslambda]
#   chunk_read -> dist/chunk_read.zip: chunk_read_lambda/ + server/core (all it imports)
#                 + numpy, numcodecs, zstandard, zlib-ng, pybase64, orjson as manylinux
#                 x86_64 wheels for the function's runtime (python3.12). boto3/botocore
#                 come with the runtime.
#   hslambda   -> dist/hslambda.zip: the whole server (server/, admin/config/config.yml;
#                 handler server.lambda_app.lambda_handler) + its dependencies, aiobotocore
#                 with the botocore it pins included.
# Rerunnable; prints the zip's size.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-chunk_read}
runtime=${LAMBDA_PYTHON:-3.12}
case "$name" in
  chunk_read) deps="numpy numcodecs zstandard zlib-ng pybase64 orjson" ;;
  hslambda) deps="aiohttp aiobotocore numpy pyyaml numcodecs zstandard zlib-ng pybase64 orjson" ;;
  *) echo "build.sh: unknown function '$name' (chunk_read, hslambda)" >&2; exit 2 ;;
esac
stage=build/lambda-$name
rm -rf "$stage" && mkdir -p "$stage" dist
pip=${PIP:-python3 -m pip}
# shellcheck disable=SC2086
$pip install -q --disable-pip-version-check --no-compile --target "$stage" \
  --platform manylinux2014_x86_64 --implementation cp --python-version "$runtime" \
  --only-binary=:all: $deps
if [ "$name" = chunk_read ]; then
  # handler: chunk_read_lambda.lambda_function.lambda_handler
  mkdir -p "$stage/chunk_read_lambda" "$stage/server/core"
  cp chunk_read_lambda/__init__.py chunk_read_lambda/lambda_function.py "$stage/chunk_read_lambda/"
  cp server/__init__.py "$stage/server/"
  cp server/core/*.py "$stage/server/core/"
else
  # handler: server.lambda_app.lambda_handler
  for pkg in server server/core server/storage server/dn server/offload server/sn server/lambda_app; do
    mkdir -p "$stage/$pkg" && cp "$pkg"/*.py "$stage/$pkg/"
  done
  mkdir -p "$stage/admin/config" && cp admin/config/config.yml "$stage/admin/config/"
  # under Lambda's 50 MB upload limit: botocore keeps only the models the server calls
  # (S3; Lambda and STS for chunk_read offload and credentials), numpy drops its tests
  find "$stage/botocore/data" -mindepth 1 -maxdepth 1 -type d \
    ! -name s3 ! -name lambda ! -name sts -exec rm -rf {} +
fi
find "$stage" -type d -name tests -path '*numpy*' -prune -exec rm -rf {} +
# bytecode compiled ahead by the runtime's own Python: the task root is read-only on
# Lambda, so without it every cold start compiles every module it imports
# (found as serve_local.sh finds it: a pyenv shim on PATH may exit 127)
py=$(awslambda/lambda_python.sh --base 2>/dev/null || true)
if [ -n "$py" ] && [ "$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$runtime" ]; then
  "$py" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$stage" >/dev/null
else
  echo "build.sh: no python$runtime here; the zip carries no bytecode (slower cold starts)" >&2
fi
rm -f "dist/$name.zip"
(cd "$stage" && python3 -c "
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
    for folder, _, files in os.walk('.'):
        for f in sorted(files):
            z.write(os.path.join(folder, f), os.path.relpath(os.path.join(folder, f), '.'))
" "../../dist/$name.zip")
echo "dist/$name.zip: $(du -h "dist/$name.zip" | cut -f1)"
