# The chargeback portal: one image for web (gunicorn), worker and beat (celery).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
COPY portal/__init__.py portal/__init__.py
COPY chargeback/__init__.py chargeback/__init__.py
COPY wallets/__init__.py wallets/__init__.py
COPY gateway/__init__.py gateway/__init__.py
COPY reports/__init__.py reports/__init__.py
# Editable: the code imported is /app's (BASE_DIR, examples/, static files all line up).
RUN pip install -e .

COPY . .
RUN KT_EMBEDDED=true python manage.py collectstatic --noinput -v0 \
    && useradd --system --uid 1000 --home /app chargeback \
    && mkdir -p /app/media /app/var/capture-outbox \
    && chown -R chargeback /app/media /app/var

USER chargeback
EXPOSE 41002
ENV PORT=41002 KT_HOST=0.0.0.0 KT_EMBEDDED=false
CMD ["gunicorn", "-c", "portal/gunicorn_conf.py", "portal.wsgi"]
