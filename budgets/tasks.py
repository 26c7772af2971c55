"""Celery tasks: take ids, call one service, safe to run twice (the services lock and re-check).
The sending tasks live beside their service (budgets/delivery.py), which evaluation enqueues."""

from celery import shared_task

from budgets import evaluation
from budgets.delivery import send_budget_alerts, send_wallet_alert

__all__ = ["check_spend", "evaluate_budgets", "send_budget_alerts", "send_wallet_alert"]


@shared_task(name="budgets.evaluate_all")
def evaluate_budgets() -> dict:
    return evaluation.budgets_evaluate_all()


@shared_task(name="budgets.check_spend", ignore_result=True)
def check_spend(organization_id: int, department_id: int | None, wallet_id: int | None) -> None:
    """The per-request check, off the request thread (see budgets/alerts.py)."""
    if department_id is not None:
        evaluation.department_spend_recorded(
            organization_id=organization_id, department_id=department_id
        )
    if wallet_id is not None:
        evaluation.wallet_spend_recorded(wallet_id=wallet_id)
