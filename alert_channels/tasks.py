"""Celery tasks: take an id, call the service (safe to run twice: it locks and re-checks)."""

from celery import shared_task

from alert_channels.services.deliveries import DeliveryFailed, delivery_send

# Exponential backoff (1 s, 2 s, 4 s ... capped at ten minutes, jittered), 15 retries: about an
# hour, as the e-mails; the hourly run (budgets.evaluate_all) enqueues what is still failed.
RETRY = {
    "autoretry_for": (DeliveryFailed,),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 15,
}


@shared_task(name="alert_channels.deliver", **RETRY)
def deliver(delivery_id: int) -> int:
    return delivery_send(delivery_id=delivery_id)
