# One image for the API, the worker and the migration job (see docker-compose.yml).
FROM python:3.11-slim

# CPU wheels by default; build with --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 for GPUs
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# numba's cache of the compiled pricing search lives in the image (compiled once at build time)
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TASKGROUPER_HOME=/data \
    NUMBA_CACHE_DIR=/app/.numba-cache

WORKDIR /app
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY grouping ./grouping
COPY service ./service
COPY worker ./worker
COPY migrations ./migrations
RUN pip install --extra-index-url "${TORCH_INDEX_URL}" -c constraints.txt -e '.[server,worker]' \
    && python -c "import grouping.selection.group_search" \
    && useradd --create-home --uid 10001 taskgrouper \
    && mkdir -p /data && chown taskgrouper /data && chown -R taskgrouper /app/.numba-cache

USER taskgrouper
VOLUME ["/data"]
EXPOSE 8000
CMD ["taskgrouper", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
