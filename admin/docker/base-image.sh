#!/usr/bin/env bash
# Print the name of a Python base image for h5cloud's Dockerfiles, making one locally
# when the official image cannot be pulled (no registry reachable).
#
#   admin/docker/base-image.sh            # -> python:3.12-slim, or h5cloud-base:bookworm
#   BASE_IMAGE=$(admin/docker/base-image.sh) && docker build --build-arg BASE_IMAGE=$BASE_IMAGE .
#
# The local base is Debian bookworm from Debian's own packages (debootstrap, as root),
# imported with `docker import`, with python3, pip and venv, `python`/`pip` on PATH as in
# the official image, and this host's CA bundle (so pip inside builds trusts the same
# HTTPS proxy the host does). It is made once; later runs print its name in a second.
# Needs: docker, and for the local base root and debootstrap.
set -euo pipefail
official=${OFFICIAL_BASE_IMAGE:-python:3.12-slim}
local_image=${LOCAL_BASE_IMAGE:-h5cloud-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ca_bundle=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

have() { docker image inspect "$1" >/dev/null 2>&1; }

if [ "${H5CLOUD_LOCAL_BASE:-0}" != 1 ]; then
  if have "$official" || docker pull -q "$official" >/dev/null 2>&1; then
    echo "$official"; exit 0
  fi
fi
if have "$local_image"; then
  echo "$local_image"; exit 0
fi

echo "base-image.sh: $official cannot be pulled; making $local_image with debootstrap" >&2
[ "$(id -u)" = 0 ] || { echo "base-image.sh: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || {
  echo "base-image.sh: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
root=$(mktemp -d /tmp/h5cloud-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
  bookworm "$root" "$mirror" >&2
# the host's trust store: the only image that carries it is this local one
[ -f "$ca_bundle" ] && cp "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
# like the official image: `python` and `pip`, and pip may install outside a venv
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
# what an image needs no copy of
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/usr/share/locale/* "$root"/var/log/*.log
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$local_image" >/dev/null
echo "$local_image"
