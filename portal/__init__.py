"""The project: settings, URLs, the Celery app, the WSGI entry point and the gunicorn server.
It sits above every app and wires them together; no app imports it."""

from portal.celery import app as celery_app

__all__ = ["celery_app"]
