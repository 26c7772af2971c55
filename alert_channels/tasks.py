"""Celery finds the app's tasks here; each lives beside the service it runs."""

from alert_channels.services.deliveries import deliver
from alert_channels.ticket_events import cost_ticket_publish

__all__ = ["cost_ticket_publish", "deliver"]
