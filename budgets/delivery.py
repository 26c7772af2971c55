"""Sending alert emails exactly once, whatever the broker does.

A task may run twice (acks_late redelivery after a worker died, the hourly sweep re-enqueueing a
failed alert while a retry is also queued). Each send therefore locks its alert rows with
SELECT ... FOR UPDATE SKIP LOCKED and re-reads their status: a second runner either waits for
nothing (the rows are locked by the first, so it skips them and returns) or finds them `sent`.

The lock is held while talking to SMTP. That is deliberate: marking the rows "sending" and
committing first would leave them stuck if the worker died mid-send. The transaction is bounded
by EMAIL_TIMEOUT and touches only these alert rows, never the gateway's wallet rows.
"""

from smtplib import SMTPException

from celery import shared_task
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from budgets import emails
from budgets.channel_events import budget_alerts_publish, wallet_alert_publish
from budgets.models import BudgetAlert, WalletAlert

SEND_ERRORS = (SMTPException, OSError)


def _deliver(model, rows: list, build) -> int | Exception:
    """Send the message for locked `rows` and record the outcome; 1 if sent, 0 if nobody to send to.

    On an SMTP error the rows are marked failed (error, attempts) and the error is re-raised
    *after* the commit (returned here, raised by the caller), so the record survives the retry.
    """
    ids = [row.pk for row in rows]
    message = build()
    if message is None:
        model.objects.filter(pk__in=ids).update(
            status=model.Status.FAILED, error="nobody to send it to: no owner emails"
        )
        return 0
    try:
        message.send()
    except SEND_ERRORS as exc:
        model.objects.filter(pk__in=ids).update(
            status=model.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            attempts=F("attempts") + 1,
        )
        return exc
    model.objects.filter(pk__in=ids).update(
        status=model.Status.SENT, sent_at=timezone.now(), error="", attempts=F("attempts") + 1
    )
    return 1


def budget_alerts_deliver(*, alert_ids: list[int]) -> int:
    """Email the not-yet-sent alerts among `alert_ids` (one budget, one period) as ONE message.

    Idempotent: alerts already sent, or being sent by another worker right now, are skipped.
    Returns the number of emails sent (0 or 1); raises the SMTP/OS error after recording it.
    """
    with transaction.atomic():
        alerts = list(
            BudgetAlert.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("budget__department", "budget__organization")
            .filter(pk__in=alert_ids)
            .exclude(status=BudgetAlert.Status.SENT)
            .order_by("kind", "threshold")
        )
        if not alerts:
            return 0
        # The channels (Slack, webhooks) hear the same facts, whether or not the e-mail goes.
        content = emails.budget_alert_content(alerts=alerts)
        budget_alerts_publish(alerts=alerts, facts=content["facts"])
        outcome = _deliver(
            BudgetAlert,
            alerts,
            lambda: emails.budget_alert_message(alerts=alerts, content=content),
        )
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def wallet_alert_deliver(*, alert_id: int) -> int:
    """Email one wallet alert, exactly once (same locking as budget_alerts_deliver)."""
    with transaction.atomic():
        alert = (
            WalletAlert.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("wallet__department", "wallet__organization", "funding_entry")
            .filter(pk=alert_id)
            .exclude(status=WalletAlert.Status.SENT)
            .first()
        )
        if alert is None:
            return 0
        content = emails.wallet_alert_content(alert=alert)
        wallet_alert_publish(alert=alert, facts=content["facts"])
        outcome = _deliver(
            WalletAlert, [alert], lambda: emails.wallet_alert_message(alert=alert, content=content)
        )
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


# Sending retries SMTP and network errors with exponential backoff (1 s, 2 s, 4 s ... capped at
# ten minutes, jittered) 15 times, about an hour; the hourly evaluation re-enqueues anything
# still failed. Each task takes ids and calls the service above (idempotent: it locks and
# re-checks).
RETRY = {
    "autoretry_for": SEND_ERRORS,
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 15,
}


@shared_task(name="budgets.send_budget_alerts", **RETRY)
def send_budget_alerts(alert_ids: list[int]) -> int:
    return budget_alerts_deliver(alert_ids=list(alert_ids))


@shared_task(name="budgets.send_wallet_alert", **RETRY)
def send_wallet_alert(alert_id: int) -> int:
    return wallet_alert_deliver(alert_id=alert_id)
