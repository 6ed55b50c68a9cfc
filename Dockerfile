# Image for the dspy-flywheel services (collector, trigger, optimizer, manager, migrate).
# Used by docker-compose.yml; each service picks its module with `command:`.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    FLYWHEEL_SCHEMAS_DIR=/app/schemas \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
# constraints.txt* : the pinned versions CI installs (copied when present).
COPY pyproject.toml README.md constraints.txt* ./
COPY schemas ./schemas
COPY services ./services
RUN if [ -f constraints.txt ]; then pip install -c constraints.txt .; else pip install .; fi \
    && useradd --system --uid 10001 --home-dir /app flywheel

USER flywheel
CMD ["flywheel", "--help"]
