#!/usr/bin/env bash
# Create or update a function with the aws CLI:  awslambda/deploy.sh [chunk_read|hslambda]
# Parameters: awslambda/deploy.conf (chunk_read) or awslambda/deploy-hslambda.conf,
# overridden by environment variables of the same names. AWS_ENDPOINT_URL (e.g. moto's
# server) is honoured by the CLI itself.
# Steps: the execution role (Lambda trust policy) if missing, with its managed policies
# (basic execution; S3 read-only for chunk_read) and, with FUNCTION_BUCKET, full access to
# that bucket; wait for it; create-function, or update-function-code and the
# configuration (memory, timeout, environment) when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-chunk_read}" in
  chunk_read) default_conf=awslambda/deploy.conf ;;
  hslambda) default_conf=awslambda/deploy-hslambda.conf ;;
  *) echo "deploy.sh: unknown function '$1' (chunk_read, hslambda)" >&2; exit 2 ;;
esac
conf=${DEPLOY_CONF:-$default_conf}
while IFS='=' read -r key value; do
  case "$key" in ''|\#*) continue ;; esac
  [ -n "${!key:-}" ] || export "$key=$value"
done < "$conf"
aws=${AWS_CLI:-aws}
[ -f "$ZIP" ] || { echo "deploy.sh: $ZIP not found (run awslambda/build.sh)" >&2; exit 1; }
run() { $aws --region "$REGION" --output json "$@"; }

trust='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'
if ! role_arn=$(run iam get-role --role-name "$ROLE_NAME" --query Role.Arn --output text 2>/dev/null); then
  echo "creating role $ROLE_NAME"
  role_arn=$(run iam create-role --role-name "$ROLE_NAME" \
    --assume-role-policy-document "$trust" --query Role.Arn --output text)
fi
for policy in $POLICIES; do
  run iam attach-role-policy --role-name "$ROLE_NAME" --policy-arn "arn:aws:iam::aws:policy/$policy"
done
if [ -n "${FUNCTION_BUCKET:-}" ]; then
  bucket_policy='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::'$FUNCTION_BUCKET'", "arn:aws:s3:::'$FUNCTION_BUCKET'/*"]}]}'
  run iam put-role-policy --role-name "$ROLE_NAME" --policy-name "h5cloud-bucket-$FUNCTION_BUCKET" \
    --policy-document "$bucket_policy"
fi
run iam wait role-exists --role-name "$ROLE_NAME"

env="Variables={LOG_LEVEL=$LOG_LEVEL${S3_GATEWAY:+,AWS_S3_GATEWAY=$S3_GATEWAY}${FUNCTION_BUCKET:+,BUCKET_NAME=$FUNCTION_BUCKET}}"
if run lambda get-function --function-name "$FUNCTION_NAME" >/dev/null 2>&1; then
  echo "updating function $FUNCTION_NAME"
  run lambda update-function-code --function-name "$FUNCTION_NAME" \
    --zip-file "fileb://$ZIP" >/dev/null
  run lambda wait function-updated --function-name "$FUNCTION_NAME" 2>/dev/null || true
  run lambda update-function-configuration --function-name "$FUNCTION_NAME" \
    --memory-size "$MEMORY" --timeout "$TIMEOUT" --handler "$HANDLER" \
    --environment "$env" >/dev/null
else
  echo "creating function $FUNCTION_NAME"
  for attempt in 1 2 3 4 5 6 7 8 9 10; do   # a new role takes seconds to be assumable
    if out=$(run lambda create-function --function-name "$FUNCTION_NAME" \
        --runtime "$RUNTIME" --handler "$HANDLER" --role "$role_arn" \
        --zip-file "fileb://$ZIP" --memory-size "$MEMORY" --timeout "$TIMEOUT" \
        --environment "$env" 2>&1); then
      break
    fi
    case "$out" in *"cannot be assumed"*) sleep 3 ;; *) echo "$out" >&2; exit 1 ;; esac
  done
fi
echo "deployed $FUNCTION_NAME ($ZIP, $(du -h "$ZIP" | cut -f1)) in $REGION"
