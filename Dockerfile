# One image for every dedup service: the stream worker, the dashboard and the CLI.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# the worker needs prometheus_client (worker extra), the dashboard FastAPI, uvicorn and jinja2 (web extra)
COPY pyproject.toml ./
COPY dedup ./dedup
RUN pip install '.[worker,web]'

COPY worker.py ./
RUN useradd --system --no-create-home dedup
USER dedup

# SIGTERM lets the worker finish its batch; compose gives it stop_grace_period to do so
STOPSIGNAL SIGTERM
CMD ["python", "worker.py"]
