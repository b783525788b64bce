# CPU image of the backend. Build: docker compose build; run: docker compose up
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MODEL_DIR=/data/models \
    PORT=9090

WORKDIR /app
# torch first, from the CPU wheel index, exactly pinned: no multi-GB CUDA build in the image
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY baal_backend/ baal_backend/
COPY label_studio_baal_hf.py _wsgi.py ./

EXPOSE 9090
VOLUME /data
# One worker: it owns the per-project training threads. Threads serve concurrent requests.
CMD exec gunicorn --bind 0.0.0.0:${PORT} --workers 1 --threads 8 --timeout 300 --no-control-socket _wsgi:app
