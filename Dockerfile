# imagehost container image.
#
#   docker build -t imagehost .
#   docker run --rm -p 8000:8000 -v imagehost-data:/app/data imagehost
#
# Two stages on the same base image: the builder resolves the environment with
# uv from uv.lock; the runtime stage gets only the finished virtualenv, the
# source and libmagic. Both stages must use the same Python image, because the
# virtualenv's interpreter is a symlink to /usr/local/bin/python3.11.
#
# Build args:
#   PYTHON_IMAGE  base image for both stages (default python:3.11-slim)

ARG PYTHON_IMAGE=python:3.11-slim

# uv comes from Astral's official distroless image: a single static binary,
# pinned to the version that wrote uv.lock (lockfile revision 5), so
# `--frozen` reads the lock exactly as the developers do. Copying the binary
# needs neither pip nor a throwaway layer, and leaves nothing of uv in the
# runtime image. (Where only PyPI is reachable, `pip install uv==0.13.9` in
# the builder does the same job.)
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv


FROM ${PYTHON_IMAGE} AS builder

COPY --from=uv /uv /usr/local/bin/uv

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when the lock
# changes, not on every source edit. (Plain COPY rather than RUN --mount, so
# the file builds with BuildKit and with the legacy builder alike.)
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself. It stays an editable install (uv's default): the
# package finds migrations/, templates/ and static/ next to itself, at /app,
# so it must run from the source tree rather than from site-packages.
COPY . .
RUN uv sync --frozen --no-dev


FROM ${PYTHON_IMAGE} AS runtime

# libmagic1: python-magic sniffs every upload with it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 \
    && rm -rf /var/lib/apt/lists/*

# An unprivileged user with a fixed id (handy for volume permissions).
RUN groupadd --system --gid 10001 imagehost \
    && useradd --system --uid 10001 --gid imagehost --home-dir /app \
       --no-create-home --shell /usr/sbin/nologin imagehost

WORKDIR /app

# Code and environment stay owned by root (read-only for the app); only
# /app/data, where the embedded defaults keep the SQLite database, the local
# image folder and the generated secret key, is writable.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/pyproject.toml /app/README.md /app/
COPY --from=builder /app/imagehost /app/imagehost
COPY --from=builder /app/migrations /app/migrations
COPY --from=builder /app/templates /app/templates
COPY --from=builder /app/static /app/static
RUN install -d -o imagehost -g imagehost -m 0750 /app/data

ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WORKERS=0

USER imagehost

EXPOSE 8000

# No curl in the slim image: ask Python. urlopen raises on a non-2xx answer
# (the health endpoint answers 503 when the database or storage is down).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('PORT', '8000'), timeout=4)"]

# Apply migrations, then serve; exec makes the server PID 1 so `docker stop`
# (SIGTERM) reaches it directly. WORKERS=0: one worker process per core the
# container may use (the parent forwards SIGTERM to each and waits for them).
CMD ["sh", "-c", "imagehost migrate && exec imagehost serve"]
