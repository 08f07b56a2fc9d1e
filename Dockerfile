# hudhud: one image for the worker, beat, Flower and the sandbox (the command picks the role).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HUDHUD_BEAT_SCHEDULE=/var/lib/hudhud/beat-schedule

WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY tasks ./tasks
COPY worker ./worker
COPY hudhud ./hudhud
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/hudhud --create-home hudhud

USER hudhud
ENTRYPOINT ["hudhud"]
CMD ["worker"]
