"""Celery tasks: take ids, call one service, safe to run twice (the services lock and re-check).

Sending retries SMTP and network errors with exponential backoff (1 s, 2 s, 4 s … capped at ten
minutes, jittered) 15 times, about an hour; the hourly evaluation re-enqueues anything still failed.
"""

from smtplib import SMTPException

from celery import shared_task

from wallets.budgets import delivery, evaluation

RETRY = {
    "autoretry_for": (SMTPException, OSError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 15,
}


@shared_task(name="budgets.send_budget_alerts", **RETRY)
def send_budget_alerts(alert_ids: list[int]) -> int:
    return delivery.budget_alerts_deliver(alert_ids=list(alert_ids))


@shared_task(name="budgets.send_wallet_alert", **RETRY)
def send_wallet_alert(alert_id: int) -> int:
    return delivery.wallet_alert_deliver(alert_id=alert_id)


@shared_task(name="budgets.evaluate_all")
def evaluate_budgets() -> dict:
    return evaluation.budgets_evaluate_all()


@shared_task(name="budgets.check_spend", ignore_result=True)
def check_spend(organization_id: int, department_id: int | None, wallet_id: int | None) -> None:
    """The per-request check, off the request thread (see wallets/alerts.py)."""
    if department_id is not None:
        evaluation.department_spend_recorded(
            organization_id=organization_id, department_id=department_id
        )
    if wallet_id is not None:
        evaluation.wallet_spend_recorded(wallet_id=wallet_id)
