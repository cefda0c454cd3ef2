# syntax=docker/dockerfile:1
# One image for every Chronicle process: `chronicle serve <process>`, `chronicle migrate`,
# `chronicle up`. Built in two stages: wheels are compiled in the builder (which has the
# compilers), the runtime stage installs them with no compiler and no source tree.
#
#   docker build -t chronicle:0.1.0 .
#
# The base is pinned by exact version; release builds pin it further by digest with
# --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Compilers only for dependencies that ship no wheel for the target platform.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY chronicle ./chronicle
COPY commands ./commands
COPY eventstore ./eventstore
COPY projections ./projections
COPY ws_bridge ./ws_bridge
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="chronicle" \
      org.opencontainers.image.description="Event-sourced CQRS reference backend" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/chronicle \
    PATH=/opt/chronicle/bin:$PATH \
    CHRONICLE_HTTP_HOST=0.0.0.0
RUN groupadd --system --gid 10001 chronicle \
 && useradd --system --uid 10001 --gid chronicle \
      --home-dir /var/lib/chronicle --create-home --shell /usr/sbin/nologin chronicle
# The wheels are bind-mounted from the builder, so they leave no layer behind. pip
# byte-compiles at install time: nothing is written under /opt at run time, and the
# root filesystem can be mounted read-only (give the process a writable /tmp).
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv ${VIRTUAL_ENV} \
 && ${VIRTUAL_ENV}/bin/pip install --no-index --no-cache-dir --find-links=/wheels chronicle
# Numeric user, so Kubernetes can verify runAsNonRoot without resolving names. The
# working directory is the user's home: `chronicle up` keeps its SQLite file there.
USER 10001:10001
WORKDIR /var/lib/chronicle
EXPOSE 8000 8001 8002 8003 8004
ENTRYPOINT ["chronicle"]
CMD ["up"]
