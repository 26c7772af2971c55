"""Budget and wallet alerts on the alert channels (Slack, webhooks: alert_channels/), from the
same facts as their e-mail.

Called by the e-mail delivery (budgets/delivery.py) inside its locked transaction, before the
e-mail is sent, with the content the e-mail is built from. It may run more than once for an
alert (a retried e-mail, the hourly sweep): the event key names the alert rows, and
alert_channels keeps one delivery per event and channel.
"""

from alert_channels import models as channel_events
from alert_channels.services.deliveries import event_publish
from budgets.models import BudgetAlert, WalletAlert


def budget_alerts_publish(*, alerts: list[BudgetAlert], facts: dict) -> int:
    """Publish alerts of one budget and period (one e-mail, so one event); returns the
    deliveries created."""
    first = min(alerts, key=lambda a: a.pk)
    budget = first.budget
    forecast = first.kind == BudgetAlert.Kind.FORECAST
    created = event_publish(
        organization_id=budget.organization_id,
        event_type=channel_events.BUDGET_FORECAST if forecast else channel_events.BUDGET_THRESHOLD,
        # The group's first row: the alerts of one e-mail are created (and regrouped by the
        # hourly sweep) together.
        event_key=f"budget_alert:{first.pk}",
        facts=facts,
        occurred_at=first.created_at,
        department_id=budget.department_id,
        budget_period=budget.period,
    )
    return len(created)


def wallet_alert_publish(*, alert: WalletAlert, facts: dict) -> int:
    wallet = alert.wallet
    depleted = alert.state == WalletAlert.State.DEPLETED
    created = event_publish(
        organization_id=wallet.organization_id,
        event_type=channel_events.WALLET_DEPLETED if depleted else channel_events.WALLET_LOW,
        event_key=f"wallet_alert:{alert.pk}",
        facts=facts,
        occurred_at=alert.created_at,
        department_id=wallet.department_id,
    )
    return len(created)
