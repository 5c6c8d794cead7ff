# syntax=docker/dockerfile:1
# h5cloud: one image for both roles. The default command runs the service node (SN);
# a data node (DN) runs the same image with `python -m server.dn.main`
# (admin/docker/docker-compose.yml does that). Every setting comes from an
# environment variable (server/config.py).
#
#   docker build -t h5cloud:latest .
#   docker build --build-arg BASE_IMAGE=$(admin/docker/base-image.sh) -t h5cloud:latest .
#
# BASE_IMAGE: the official slim Python (the Lambda runtime's minor version), or where no
# registry can be reached the local Debian base that admin/docker/base-image.sh makes.
ARG BASE_IMAGE=python:3.12-slim

# ---- build: the package and its dependencies into a venv -------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/h5cloud
COPY setup.cfg pyproject.toml README.md /src/
COPY server/ /src/server/
# not editable: the final image needs no source tree. Then the dependencies' test
# folders go, and their extension modules lose debug symbols (about 60 MB: numcodecs,
# zstandard and uvloop ship unstripped) where binutils can be installed. Not the
# libraries wheels vendor (*.libs): numpy's OpenBLAS fails to load once stripped.
RUN /opt/h5cloud/bin/pip install /src \
    && /opt/h5cloud/bin/pip uninstall -q -y pip setuptools \
    && find /opt/h5cloud -depth -type d \( -name tests -o -name test \) \
         -path '*/site-packages/*' -prune -exec rm -rf {} + \
    && rm -rf /opt/h5cloud/share
RUN if apt-get update -qq >/dev/null 2>&1 \
         && apt-get install -qq -y --no-install-recommends binutils >/dev/null 2>&1; then \
      find /opt/h5cloud -name '*.cpython-*.so' -not -path '*.libs/*' -type f \
        -exec strip --strip-unneeded {} + ; \
    else echo "binutils not available: extension modules stay unstripped"; fi

# ---- run: the base image plus that venv ------------------------------------------
FROM ${BASE_IMAGE}
ENV PATH=/opt/h5cloud/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CONFIG_DIR=/app/admin/config \
    BIND_ADDRESS=0.0.0.0 \
    SN_PORT=5101 \
    DN_PORT=6101
# CONFIG_DIR: config.yml is read from here (the package is installed, not editable).
# BIND_ADDRESS: listen on every interface inside the container (default 127.0.0.1).
COPY --from=build /opt/h5cloud /opt/h5cloud
COPY admin/config/config.yml admin/config/passwd.default admin/config/groups.default \
     /app/admin/config/
RUN useradd --uid 1000 --user-group --no-create-home --home-dir /app \
            --shell /usr/sbin/nologin h5cloud \
    && mkdir -p /data /config \
    && chown h5cloud:h5cloud /data
WORKDIR /app
# any uid works (compose may set it to the owner of the data folder), but never root
USER 1000:1000
EXPOSE 5101 6101
# both roles answer GET /health on their own port; the check finds which one listens
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-m", "server.healthcheck"]
# The DNs flush dirty data on SIGTERM: exec form, so python is PID 1 and gets the
# signal itself. Give it time: `docker stop -t 60` or the compose file's stop_grace_period.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "server.sn.main"]
