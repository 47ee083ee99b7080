# The service image: `docker build -t export-consumer .`, run with EXPORT_* variables.
# Two stages: the build stage compiles the wheel (its C part) into a venv with its
# runtime dependencies (no compiler, tests or dev tools reach the final image); the final stage is the slim
# Python base, DejaVu for PDF reports, that venv, and a non-root user.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for consumer/csvrows/*.c; it stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/export-consumer
WORKDIR /src
COPY pyproject.toml README.md hatch_build.py ./
COPY consumer ./consumer
COPY producer_tools ./producer_tools
COPY schemas ./schemas
RUN /opt/export-consumer/bin/pip install .

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter \
    && mkdir -p /srv/exports \
    && chown exporter /srv/exports
COPY --from=build /opt/export-consumer /opt/export-consumer
ENV PATH=/opt/export-consumer/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    EXPORT_OUTPUT_DIR=/srv/exports \
    EXPORT_METRICS_PORT=9400
USER exporter
WORKDIR /srv/exports
# Outputs live here; replicas share one volume (see docker-compose.yml).
VOLUME ["/srv/exports"]
EXPOSE 9400
# /healthz answers while the process lives; /readyz (joined the group) is for load balancers.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9400/healthz', timeout=2)"]
ENTRYPOINT ["export-consumer", "run"]
