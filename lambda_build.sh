#!/usr/bin/env bash
# Build the hslambda container image (Dockerfile.lambda):  ./lambda_build.sh [TAG]
# Needs a running Docker engine. To deploy it, push the image to ECR and create the
# function with `aws lambda create-function --package-type Image --code ImageUri=...`;
# or use the zip instead: awslambda/build.sh hslambda && awslambda/deploy.sh hslambda.
set -euo pipefail
cd "$(dirname "$0")"
tag=${1:-hslambda:latest}
if ! docker info >/dev/null 2>&1; then
  echo "lambda_build.sh: no Docker engine answers here (try awslambda/build.sh hslambda)" >&2
  exit 1
fi
docker build -f Dockerfile.lambda -t "$tag" .
echo "built $tag"
