"""Celery discovers `wallets.tasks`; the budget alert tasks live in wallets/budgets/tasks.py."""

from wallets.budgets.tasks import evaluate_budgets, send_budget_alerts, send_wallet_alert

__all__ = ["evaluate_budgets", "send_budget_alerts", "send_wallet_alert"]
