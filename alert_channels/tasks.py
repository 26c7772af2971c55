"""Celery finds the app's tasks here; each lives beside the service it runs."""

from alert_channels.services.deliveries import deliver

__all__ = ["deliver"]
