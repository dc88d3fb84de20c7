# One image for every role: web (granian's WSGI workers, the default), websockets (uvicorn), worker and beat (celery).
# Settings come from the environment: DATABASE_URL, REDIS_URL, SECRET_KEY or SECRET_KEY_FILE, ALLOWED_HOSTS...
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=memory_admin.settings \
    STATIC_ROOT=/app/staticfiles \
    PORT=8000

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
# collectstatic imports the settings, which insist on real URLs and a secret; these placeholders are used
# only for this build step and never reach a running container.
RUN DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    SECRET_KEY=build-only-placeholder-secret-not-used-at-runtime-000 \
    python manage.py collectstatic --noinput -v 0 \
 && useradd --system --uid 10001 --home-dir /app memory \
 && mkdir -p /app/var/archive /app/var/beat \
 && chown -R memory /app/staticfiles /app/var

USER memory
EXPOSE 8000 8001

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8000\")}/healthz', timeout=2)" || exit 1

# The same command line as `make run` (memory_admin.runner.web_argv). The web workers' counters are summed
# at scrape time from PROMETHEUS_MULTIPROC_DIR (memory_admin.metrics), emptied at each start.
CMD ["sh", "-c", "export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus} && rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && exec granian --interface wsgi memory_admin.wsgi:application --host 0.0.0.0 --port ${PORT} --workers ${WEB_WORKERS:-$(( $(nproc) + 1 ))} --blocking-threads ${WEB_THREADS:-2} --runtime-mode st --http 1 --no-ws --respawn-failed-workers --workers-kill-timeout 10 --log-level warning"]
