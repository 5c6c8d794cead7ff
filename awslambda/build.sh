#!/usr/bin/env bash
# Build a Lambda zip from a clean folder:  awslambda/build.sh [chunk_read]
#   chunk_read -> dist/chunk_read.zip: chunk_read_lambda/ + server/core (all it imports)
#                 + numpy, numcodecs, zstandard, zlib-ng as manylinux x86_64 wheels for
#                 the function's runtime (python3.12). boto3/botocore come with the runtime.
# Rerunnable; prints the zip's size.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-chunk_read}
runtime=${LAMBDA_PYTHON:-3.12}
case "$name" in
  chunk_read) ;;
  *) echo "build.sh: unknown function '$name' (chunk_read)" >&2; exit 2 ;;
esac
stage=build/lambda-$name
rm -rf "$stage" && mkdir -p "$stage" dist
pip=${PIP:-python3 -m pip}
$pip install -q --disable-pip-version-check --no-compile --target "$stage" \
  --platform manylinux2014_x86_64 --implementation cp --python-version "$runtime" \
  --only-binary=:all: numpy numcodecs zstandard zlib-ng
# handler: chunk_read_lambda.lambda_function.lambda_handler
mkdir -p "$stage/chunk_read_lambda"
cp chunk_read_lambda/__init__.py chunk_read_lambda/lambda_function.py "$stage/chunk_read_lambda/"
mkdir -p "$stage/server/core"
cp server/__init__.py "$stage/server/"
cp server/core/*.py "$stage/server/core/"
rm -f "dist/$name.zip"
(cd "$stage" && python3 -c "
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
    for folder, _, files in os.walk('.'):
        for f in sorted(files):
            if '__pycache__' not in folder:
                z.write(os.path.join(folder, f), os.path.relpath(os.path.join(folder, f), '.'))
" "../../dist/$name.zip")
echo "dist/$name.zip: $(du -h "dist/$name.zip" | cut -f1)"
