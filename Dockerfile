# syntax=docker/dockerfile:1
# h5cloud: one image for both roles. The default command runs the service node
# (SN); a data node (DN) runs the same image with the command
# `python -m server.dn.main` (admin/docker/docker-compose.yml does that).
# Every setting comes from an environment variable (server/config.py).
#
#   docker build -t h5cloud:latest .
#   docker run -d --name dn1 -e NODE_ID=dn-001 -v "$PWD/data:/data" -e ROOT_DIR=/data \
#       h5cloud:latest python -m server.dn.main
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONFIG_DIR=/app/admin/config \
    BIND_ADDRESS=0.0.0.0 \
    SN_PORT=5101 \
    DN_PORT=6101
# CONFIG_DIR: server/config.py looks for admin/config/config.yml next to the
#   package; the package is installed into site-packages (not editable), so
#   point it at the copy in /app explicitly.
# BIND_ADDRESS: listen on every interface inside the container (default 127.0.0.1).

WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY server/ ./server/
COPY admin/ ./admin/
RUN pip install --no-cache-dir /app \
    && rm -rf /app/build /app/*.egg-info \
    && useradd --uid 1000 --user-group --no-create-home --home-dir /app \
               --shell /usr/sbin/nologin h5cloud \
    && mkdir -p /data /config \
    && chown h5cloud:h5cloud /data

# Any uid works (compose may override it to match the owner of the data folder).
USER h5cloud
EXPOSE 5101 6101
# The DNs flush dirty data on SIGTERM: exec form, so python is PID 1 and gets
# the signal itself (no shell in between). Allow it time to finish:
# `docker stop -t 60`, or the compose file's stop_grace_period.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "server.sn.main"]
