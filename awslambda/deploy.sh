#!/usr/bin/env bash
# Create or update a function with the aws CLI:  awslambda/deploy.sh [chunk_read|hslambda]
# Parameters: awslambda/deploy.conf (chunk_read) or awslambda/deploy-hslambda.conf,
# overridden by environment variables of the same names. AWS_ENDPOINT_URL (e.g. moto's
# server) is honoured by the CLI itself.
# Steps: the execution role (Lambda trust policy) if missing, with its managed policies
# (basic execution; S3 read-only for chunk_read) and, with FUNCTION_BUCKET, full access to
# that bucket; wait for it; create-function, or update-function-code and the
# configuration (memory, timeout, environment) when it exists. With DASHBOARD (a name), a
# CloudWatch dashboard of that name (put-dashboard: created or replaced) showing the
# function's AWS/Lambda metrics, its own EMF metrics (namespace h5cloud) and, for
# chunk_read, the SN's offload decisions (server/offload/emf.py) about that function.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-chunk_read}
case "$kind" in
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
if [ -n "${DASHBOARD:-}" ] && ! [[ "$DASHBOARD" =~ ^[A-Za-z0-9_-]{1,255}$ ]]; then
  echo "deploy.sh: DASHBOARD '$DASHBOARD': letters, digits, - and _ only" >&2; exit 2
fi
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

# The dashboard's body (JSON, built by python3: the aws CLI's own language; names are
# passed as arguments, never spliced into code or JSON by the shell).
dashboard_body() {
  ${PYTHON:-python3} - "$kind" "$FUNCTION_NAME" "$REGION" <<'PY'
import json
import sys

kind, fn, region = sys.argv[1:4]


def metric(namespace, name, dims, **options):
    return [namespace, name, *[v for d in dims for v in d]] + ([options] if options else [])


def lam(name, **options):           # AWS/Lambda's own metrics of the function
    return metric("AWS/Lambda", name, [("FunctionName", fn)], **options)


def own(name, **options):           # the function's EMF metrics (its log lines)
    return metric("h5cloud", name, [("FunctionName", fn)], **options)


def sn(name, plan, **options):      # the SN's offload decisions about the function
    return metric("h5cloud", name, [("FunctionName", fn), ("Plan", plan)], **options)


def widget(title, metrics, stat="Sum"):
    return {"type": "metric", "properties": {
        "title": title, "region": region, "view": "timeSeries", "stacked": False,
        "period": 60, "stat": stat, "metrics": metrics}}


widgets = [
    widget(f"{fn}: invocations, errors, throttles",
           [lam("Invocations"), lam("Errors"), lam("Throttles")]),
    widget(f"{fn}: duration (ms)", [lam("Duration", stat="p50", label="p50"),
                                    lam("Duration", stat="p99", label="p99")], "Average"),
    widget(f"{fn}: concurrent executions", [lam("ConcurrentExecutions")], "Maximum"),
]
if kind == "chunk_read":
    widgets += [
        widget(f"{fn}: chunks read", [own("ChunksRead")]),
        widget(f"{fn}: bytes read", [own("BytesRead")]),
        widget(f"{fn}: read time in the function (ms)",
               [own("ReadMs", stat="p50", label="p50"),
                own("ReadMs", stat="p99", label="p99")], "Average"),
        widget("SN offload: requests and chunks by plan",
               [sn("OffloadChunks", p, stat="SampleCount", label=f"{p} requests")
                for p in ("dn", "lambda")] +
               [sn("OffloadChunks", p, label=f"{p} chunks", yAxis="right")
                for p in ("dn", "lambda")] +
               [sn("Explored", p, label=f"{p} explored") for p in ("dn", "lambda")]),
        *[widget(f"SN offload, {p} plan: estimates vs measured (ms)",
                 [sn("EstDnMs", p, label="DN estimate"),
                  sn("EstLambdaMs", p, label="Lambda estimate"),
                  sn("MeasuredMs", p, label="measured")], "Average")
          for p in ("dn", "lambda")],
        widget("SN offload: model error (measured / estimate)",
               [sn("ModelError", p, label=p) for p in ("dn", "lambda")], "Average"),
        widget("SN offload: invocations and fallbacks",
               [sn("Invocations", "lambda"), sn("Fallbacks", "lambda")]),
        widget("SN offload: estimated cost (USD)", [sn("CostUsd", "lambda")]),
    ]
else:
    widgets += [
        widget(f"{fn}: request time in the function (ms)",
               [own("RequestMs", stat="p50", label="p50"),
                own("RequestMs", stat="p99", label="p99")], "Average"),
        widget(f"{fn}: client errors, cold starts", [own("ClientErrors"), own("ColdStarts")]),
    ]
for i, w in enumerate(widgets):     # two a row
    w.update(x=i % 2 * 12, y=i // 2 * 6, width=12, height=6)
print(json.dumps({"widgets": widgets}))
PY
}

if [ -n "${DASHBOARD:-}" ]; then
  body=$(dashboard_body)
  msgs=$(run cloudwatch put-dashboard --dashboard-name "$DASHBOARD" --dashboard-body "$body" \
    --query DashboardValidationMessages --output text)
  [ -z "$msgs" ] || [ "$msgs" = None ] || echo "dashboard $DASHBOARD: $msgs" >&2
  echo "dashboard $DASHBOARD in $REGION"
fi
