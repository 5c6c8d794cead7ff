#!/usr/bin/env bash
# Start h5cloud: one service node (port 5101) and N data nodes (ports 6101...)
# serving POSIX storage in ./data (bucket hsdstest), with the sample users.
#
#   ./runall.sh [--dn N] [--docker]      (RUN_MODE=docker also selects Docker)
#
# Installs what is missing on first run (.venv), copies admin/config/passwd.default,
# creates /home/<user> folders, prints the endpoint and returns once it answers.
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD

dn=4
mode=${RUN_MODE:-local}
while [ $# -gt 0 ]; do
  case "$1" in
    --dn) dn=$2; shift 2 ;;
    --dn=*) dn=${1#--dn=}; shift ;;
    --docker) mode=docker; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "runall.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$dn" in ''|*[!0-9]*|0) echo "runall.sh: --dn needs a positive number" >&2; exit 2 ;; esac

# sample users on first run
[ -f admin/config/passwd.txt ] || cp admin/config/passwd.default admin/config/passwd.txt
[ -f admin/config/groups.txt ] || cp admin/config/groups.default admin/config/groups.txt

export BUCKET_NAME=${BUCKET_NAME:-hsdstest}
export SN_PORT=${SN_PORT:-5101} DN_PORT=${DN_PORT:-6101}
if [ -z "${AWS_S3_GATEWAY:-}" ]; then
  export ROOT_DIR=${ROOT_DIR:-$here/data}
  mkdir -p "$ROOT_DIR/$BUCKET_NAME"
fi
endpoint="http://127.0.0.1:$SN_PORT"

# the Python environment (also used to set up the home folders in Docker mode)
py=.venv/bin/python
if ! "$py" -c 'import server, aiohttp, aiobotocore, numpy, yaml' >/dev/null 2>&1; then
  echo "setting up .venv (first run)..."
  python3 -m venv .venv
  "$py" -m pip install -q --upgrade pip >/dev/null
  "$py" -m pip install -q -e .
fi

if [ "$mode" = docker ]; then
  [ "$dn" -le 8 ] || { echo "runall.sh: Docker mode runs at most 8 DNs" >&2; exit 2; }
  urls=""; services="sn"
  for i in $(seq 1 "$dn"); do urls="${urls:+$urls,}http://dn$i:6101"; services="$services dn$i"; done
  mkdir -p run && echo docker > run/mode
  # shellcheck disable=SC2086
  H5CLOUD_UID=$(id -u) H5CLOUD_GID=$(id -g) DN_URLS=$urls ROOT_DIR=${ROOT_DIR:-$here/data} docker compose -f admin/docker/docker-compose.yml up -d --build $services
  for _ in $(seq 1 300); do
    "$py" -c "import sys, server.launch as l; sys.exit(0 if l.ready('$endpoint') else 1)" && break
    sleep 0.2
  done
  log_hint="docker compose -f admin/docker/docker-compose.yml logs sn"
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
