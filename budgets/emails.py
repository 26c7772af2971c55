"""The alert emails: subject, text and HTML parts from templates/emails/. Building a message
reads the department's current numbers (spend, forecast, top models) through the selectors.

The `*_content` functions compute those numbers once, as the e-mail's context and as `facts`
(plain JSON: amounts as exact strings) for the alert channels (budgets/channel_events.py), so
a webhook says what the e-mail says."""

from decimal import Decimal

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from budgets import selectors
from budgets.models import BudgetAlert, WalletAlert
from chargeback.money import to_cents


def _cents(value) -> str | None:
    return None if value is None else str(to_cents(value))


def threshold_label(thresholds: list[int]) -> str:
    """[80] -> "80%", [50, 80, 100] -> "50%, 80% and 100%"."""
    parts = [f"{t}%" for t in thresholds]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _message(*, subject: str, template: str, context: dict, to: list[str]):
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),  # a newline in a name would be a header injection
        body=render_to_string(f"emails/{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
    )
    message.attach_alternative(render_to_string(f"emails/{template}.html", context), "text/html")
    return message


def budget_alert_message(
    *, alerts: list[BudgetAlert], content: dict | None = None
) -> EmailMultiAlternatives | None:
    """One email for alerts of one budget and period (several thresholds crossed together are
    listed in one message). None when nobody is there to receive it."""
    budget = alerts[0].budget
    recipients = list(budget.owner_emails) or list(budget.department.owner_emails)
    if not recipients:
        return None
    content = content or budget_alert_content(alerts=alerts)
    return _message(
        subject=content["subject"],
        template="budget_alert",
        context=content["context"],
        to=recipients,
    )


def budget_alert_content(*, alerts: list[BudgetAlert]) -> dict:
    """{"subject", "context" (the e-mail's), "facts" (the channels')} for alerts of one budget
    and period."""
    budget = alerts[0].budget
    department = budget.department
    status = selectors.budget_status(budget=budget)
    period_start = alerts[0].period_start
    # The alert may be sent after its period ended (a retry): describe the alert's period.
    if status.period_start != period_start:
        period_end = selectors.budget_period(budget=budget, today=period_start)[1]
        spend = max(a.spend for a in alerts)
    else:
        period_end, spend = status.period_end, status.spend
    label = selectors.budget_period_label(budget=budget, period_start=period_start)
    percent_used = (spend * 100 / budget.amount).quantize(Decimal("0.1"))
    forecast = status.forecast if status.period_start == period_start else None
    is_forecast = alerts[0].kind == BudgetAlert.Kind.FORECAST
    thresholds = [a.threshold for a in alerts if a.kind == BudgetAlert.Kind.THRESHOLD]
    currency = budget.currency
    if is_forecast:
        forecast = alerts[0].forecast if forecast is None else forecast
        forecast_percent = (forecast * 100 / budget.amount).quantize(Decimal("1"))
        subject = (
            f"[{department.name}] Forecast {selectors.money(forecast)} {currency} is "
            f"{forecast_percent}% of the {label} budget of {selectors.money(budget.amount)} {currency}"
        )
        headline = (
            f"At the current pace {department.name} will spend about "
            f"{selectors.money(forecast)} {currency} in {label}, more than its budget."
        )
    else:
        subject = (
            f"[{department.name}] {threshold_label(thresholds)} of the {label} budget reached: "
            f"{selectors.money(spend)} of {selectors.money(budget.amount)} {currency}"
        )
        headline = (
            f"{department.name} has passed {threshold_label(thresholds)} of its {label} budget."
        )
    top_models = selectors.budget_top_models(
        budget=budget, period_start=period_start, period_end=period_end
    )
    days_left = status.days_left if status.period_start == period_start else 0
    context = {
        "headline": headline,
        "department": department,
        "period_label": label,
        "period_start": period_start,
        "period_end": period_end,
        "spend": selectors.money(spend),
        "budget_amount": selectors.money(budget.amount),
        "currency": currency,
        "percent_used": percent_used,
        "days_left": days_left,
        "forecast": selectors.money(forecast) if forecast is not None else None,
        "thresholds": threshold_label(thresholds) if thresholds else "",
        "top_models": [
            {"model": row["key"], "cost": selectors.money(row["cost"]), "requests": row["requests"]}
            for row in top_models
        ],
        "dashboard_url": selectors.dashboard_url(department=department),
    }
    facts = {
        "subject": " ".join(subject.split()),
        "headline": headline,
        "department": {"team_id": department.team_id, "name": department.name},
        "budget": {"id": budget.pk, "period": budget.period},
        "period_label": label,
        "period_start": period_start.isoformat(),
        "period_end": period_end.isoformat(),
        "spend": _cents(spend),
        "budget_amount": _cents(budget.amount),
        "currency": currency,
        "percent_used": str(percent_used),
        "days_left": days_left,
        "forecast": _cents(forecast),
        "thresholds": thresholds,
        "top_models": [
            {"model": row["key"], "cost": _cents(row["cost"]), "requests": row["requests"]}
            for row in top_models
        ],
        "url": context["dashboard_url"],
    }
    return {"subject": subject, "context": context, "facts": facts}


def wallet_alert_message(
    *, alert: WalletAlert, content: dict | None = None
) -> EmailMultiAlternatives | None:
    recipients = selectors.wallet_alert_recipients(wallet=alert.wallet)
    if not recipients:
        return None
    content = content or wallet_alert_content(alert=alert)
    return _message(
        subject=content["subject"],
        template="wallet_alert",
        context=content["context"],
        to=recipients,
    )


def wallet_alert_content(*, alert: WalletAlert) -> dict:
    """{"subject", "context", "facts"} of a wallet alert (see budget_alert_content)."""
    wallet = alert.wallet
    department = wallet.department
    owner = department.name if department is not None else wallet.organization.name
    funding = alert.funding_entry.amount if alert.funding_entry is not None else None
    if alert.state == WalletAlert.State.DEPLETED:
        subject = f"[{owner}] Wallet {wallet.name} is depleted: {selectors.money(wallet.available)} {wallet.currency} available"
        headline = f"The wallet {wallet.name} has no funds left."
    else:
        subject = f"[{owner}] Wallet {wallet.name} is low: {selectors.money(wallet.available)} {wallet.currency} available"
        headline = (
            f"The wallet {wallet.name} is under {wallet.low_threshold_percent}% of its last "
            f"allocation."
        )
    enforcement = wallet.organization.wallet_enforcement
    context = {
        "headline": headline,
        "owner": owner,
        "wallet": wallet,
        "state": alert.state,
        "available": selectors.money(wallet.available),
        "balance": selectors.money(wallet.balance),
        "held": selectors.money(wallet.held),
        "last_allocation": selectors.money(funding) if funding is not None else None,
        "currency": wallet.currency,
        "enforcement": enforcement,
        "dashboard_url": (
            selectors.dashboard_url(department=department) if department is not None else ""
        ),
    }
    facts = {
        "subject": " ".join(subject.split()),
        "headline": headline,
        "wallet": {"id": wallet.pk, "name": wallet.name},
        "department": (
            {"team_id": department.team_id, "name": department.name} if department else None
        ),
        "state": alert.state,
        "available": _cents(wallet.available),
        "balance": _cents(wallet.balance),
        "held": _cents(wallet.held),
        "last_allocation": _cents(funding),
        "currency": wallet.currency,
        "enforcement": enforcement,
        "url": context["dashboard_url"],
    }
    return {"subject": subject, "context": context, "facts": facts}
