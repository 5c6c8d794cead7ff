#!/usr/bin/env bash
# Build the hslambda container image (Dockerfile.lambda):  ./lambda_build.sh [TAG]
# On AWS's public Lambda Python image, or where that cannot be pulled on the local
# Debian base (admin/docker/base-image.sh) with awslambdaric as the runtime client.
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
base=${LAMBDA_BASE_IMAGE:-public.ecr.aws/lambda/python:3.12}
if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull -q "$base" >/dev/null 2>&1; then
  base=$(H5CLOUD_LOCAL_BASE=1 admin/docker/base-image.sh)
fi
docker build -q --build-arg BASE_IMAGE="$base" -f Dockerfile.lambda -t "$tag" . >/dev/null
echo "built $tag on $base"
