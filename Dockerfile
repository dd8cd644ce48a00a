# Modelgate image: web + relay (Daphne), Celery worker and beat all run from it; compose.yaml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app:/app/platform \
    DJANGO_SETTINGS_MODULE=config.settings \
    MODELGATE_VAR_DIR=/app/var

WORKDIR /app

RUN groupadd --system --gid 10001 modelgate \
 && useradd --system --uid 10001 --gid modelgate --home-dir /app --no-create-home --shell /usr/sbin/nologin modelgate

# Dependencies first, so a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# The code stays root-owned (read-only to the app); only var/ is writable, for Celery beat's schedule.
COPY . .
# Static files are collected into the image (served by WhiteNoise). The throwaway secrets only let settings load:
# without them settings would generate and keep real ones under var/, baked into every container.
RUN DJANGO_SECRET_KEY=collectstatic-only UPSTREAM_KEY_SECRET=collectstatic-only \
    python manage.py collectstatic --noinput --verbosity 0 \
 && mkdir -p var/celery \
 && chown modelgate:modelgate var var/celery

USER modelgate
EXPOSE 8000
CMD ["python", "-m", "config.serve_daphne", "-b", "0.0.0.0", "-p", "8000", "config.asgi:application"]
