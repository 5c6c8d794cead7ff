#!/usr/bin/env bash
# Start h5cloud: one service node (port 5101) and N data nodes (ports 6101...)
# serving POSIX storage in ./data (bucket hsdstest), with the sample users.
#
#   ./runall.sh [--dn N] [--docker] [--lambda-local]   (RUN_MODE=docker also selects Docker)
#
# Installs what is missing on first run (.venv), copies admin/config/passwd.default,
# creates /home/<user> folders, prints the endpoint and returns once it answers.
# --lambda-local: a demo of serverless reads on one machine: S3 is moto's server
# (in memory, port 5900), the built chunk_read zip runs behind the local Invoke
# endpoint (port 9001), and the SN offloads big reads to it (grep serverless run/sn.log).
# --docker: SN and DNs as containers (admin/docker/): needs a running Docker engine and
# compose (v2 plugin or v1 docker-compose); builds the image on a local Debian base
# where the official Python image cannot be pulled. ./stopall.sh stops either kind.
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD

dn=4
mode=${RUN_MODE:-local}
lambda_local=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dn) dn=$2; shift 2 ;;
    --dn=*) dn=${1#--dn=}; shift ;;
    --docker) mode=docker; shift ;;
    --lambda-local) lambda_local=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "runall.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$dn" in ''|*[!0-9]*|0) echo "runall.sh: --dn needs a positive number" >&2; exit 2 ;; esac

# sample users on first run
[ -f admin/config/passwd.txt ] || cp admin/config/passwd.default admin/config/passwd.txt
[ -f admin/config/groups.txt ] || cp admin/config/groups.default admin/config/groups.txt

# the Python environment (also used to set up the home folders in Docker mode)
py=.venv/bin/python
if ! "$py" -c 'import server, aiohttp, aiobotocore, numpy, yaml, pybase64, orjson' >/dev/null 2>&1; then
  echo "setting up .venv (first run)..."
  python3 -m venv .venv
  "$py" -m pip install -q --upgrade pip >/dev/null
  "$py" -m pip install -q -e .
fi

if [ "$mode" = docker ]; then
  if ! docker info >/dev/null 2>&1; then
    echo "runall.sh: no Docker engine is reachable ('docker info' fails)." >&2
    echo "  Start one (Debian, as root: apt-get install docker.io docker-compose debootstrap;" >&2
    echo "  dockerd &), or run ./runall.sh without --docker for plain processes." >&2
    exit 1
  fi
  admin/docker/compose.sh version >/dev/null
  docker compose version >/dev/null 2>&1 && compose="docker compose" || compose=docker-compose
  # the containers reach services on this host (moto, the Invoke endpoint) at the
  # default bridge's gateway, which is Docker's own address on this machine
  bind_host=$(docker network inspect bridge -f '{{json .IPAM.Config}}' | "$py" -c '
import ipaddress, json, sys
config = json.load(sys.stdin)[0]   # the gateway, or else the first address of the subnet
print(config.get("Gateway") or next(ipaddress.ip_network(config["Subnet"]).hosts()))')
else
  bind_host=127.0.0.1
fi

export BUCKET_NAME=${BUCKET_NAME:-hsdstest}
if [ "$lambda_local" = 1 ]; then
  s3_port=${S3_PORT:-5900} lambda_port=${LAMBDA_PORT:-9001}
  export AWS_S3_GATEWAY=${AWS_S3_GATEWAY:-http://$bind_host:$s3_port}
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
  export AWS_REGION=${AWS_REGION:-us-east-1}
  export AWS_LAMBDA_CHUNKREAD_FUNCTION=chunk_read AWS_LAMBDA_GATEWAY=http://$bind_host:$lambda_port
  # one machine runs a few workers, not AWS's thousand: the SN plans for what answers
  export AWS_LAMBDA_MAX_INVOKE=${AWS_LAMBDA_MAX_INVOKE:-8}
  # ... each a process with a core of its own, as a 1,769 MB function has on AWS
  export AWS_LAMBDA_MEMORY_MB=${AWS_LAMBDA_MEMORY_MB:-1769}
  export ROOT_DIR=""
fi
export SN_PORT=${SN_PORT:-5101} DN_PORT=${DN_PORT:-6101}
if [ -z "${AWS_S3_GATEWAY:-}" ]; then
  export ROOT_DIR=${ROOT_DIR:-$here/data}
  mkdir -p "$ROOT_DIR/$BUCKET_NAME"
fi
endpoint="http://127.0.0.1:$SN_PORT"

if [ "$lambda_local" = 1 ]; then
  "$py" -c 'import moto, boto3' >/dev/null 2>&1 || "$py" -m pip install -q 'moto[server]' boto3
  # the Lambda runtime (python3.12 + boto3), checked here so a missing one stops us early
  ./awslambda/lambda_python.sh >/dev/null
  [ -f dist/chunk_read.zip ] || PIP="$py -m pip" ./awslambda/build.sh
  mkdir -p run
  if ! { [ -f run/moto.pid ] && kill -0 "$(cat run/moto.pid)" 2>/dev/null; }; then
    nohup "$py" -m moto.server -H "$bind_host" -p "$s3_port" > run/moto.log 2>&1 &
    echo $! > run/moto.pid
  fi
  "$py" - "$AWS_S3_GATEWAY" "$BUCKET_NAME" <<'PY'
import sys, time, boto3
for _ in range(100):
    try:
        s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
        if sys.argv[2] not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
            s3.create_bucket(Bucket=sys.argv[2])
        break
    except Exception:
        time.sleep(0.1)
PY
  if ! { [ -f run/lambda.pid ] && kill -0 "$(cat run/lambda.pid)" 2>/dev/null; }; then
    nohup ./awslambda/serve_local.sh --host "$bind_host" --port "$lambda_port" --concurrency "$AWS_LAMBDA_MAX_INVOKE" \
      chunk_read=dist/chunk_read.zip > run/lambda.log 2>&1 &
    echo $! > run/lambda.pid
  fi
fi

if [ "$mode" = docker ]; then
  image=${H5CLOUD_IMAGE:-h5cloud:latest}
  base=$(admin/docker/base-image.sh)
  echo "building $image on $base..."
  docker build -q --build-arg BASE_IMAGE="$base" -t "$image" . >/dev/null
  # never root inside: as root here, the containers run as 1000, which gets the data folder
  uid=$(id -u) gid=$(id -g)
  if [ "$uid" = 0 ]; then
    uid=1000 gid=1000
    [ -z "${AWS_S3_GATEWAY:-}" ] && chown -R "$uid:$gid" "$ROOT_DIR"
  fi
  container_root=${ROOT_DIR:+/data}       # empty: S3 (AWS_S3_GATEWAY)
  mkdir -p run && echo docker > run/mode
  H5CLOUD_IMAGE=$image H5CLOUD_UID=$uid H5CLOUD_GID=$gid DN_COUNT=$dn \
    ROOT_DIR=${ROOT_DIR:-$here/data} CONTAINER_ROOT_DIR=$container_root \
    admin/docker/compose.sh up -d --scale dn="$dn" sn dn
  up=0
  for _ in $(seq 1 300); do
    "$py" -c "import sys, server.launch as l; sys.exit(0 if l.ready('$endpoint') else 1)" \
      && { up=1; break; }
    sleep 0.2
  done
  if [ "$up" = 0 ]; then
    echo "runall.sh: the containers did not answer at $endpoint within 60 s; their logs:" >&2
    admin/docker/compose.sh logs --tail 20 >&2 || true
    exit 1
  fi
  log_hint="$compose -p ${H5CLOUD_PROJECT:-h5cloud} -f admin/docker/docker-compose.yml logs sn"
  [ "$lambda_local" = 1 ] && log_hint="$log_hint | grep serverless"
else
  if [ -f run/sn.pid ] && kill -0 "$(cat run/sn.pid)" 2>/dev/null; then
    echo "h5cloud is already running at $endpoint (./stopall.sh stops it)"
    exit 0
  fi
  export PASSWORD_FILE=${PASSWORD_FILE:-$here/admin/config/passwd.txt}
  export GROUPS_FILE=${GROUPS_FILE:-$here/admin/config/groups.txt}
  "$py" -m server.launch start --dn "$dn" --run-dir run
  log_hint="grep serverless $here/run/sn.log"
fi

PASSWORD_FILE=${PASSWORD_FILE:-$here/admin/config/passwd.txt} "$py" -m server.launch home
echo "endpoint: $endpoint   users: admin, test_user1, test_user2 (admin/config/passwd.txt)"
echo "SN log:   $log_hint"
