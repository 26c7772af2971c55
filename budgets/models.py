"""Budgets (soft spend targets per department and period) and the alerts they and the wallets
send: each alert is a row with a unique key, so it happens once."""

from django.db import models
from django.utils import timezone

from chargeback import display
from chargeback.models import Department, Organization
from chargeback.money import ZERO, AmountField
from wallets.models import LedgerEntry, Wallet, WalletStatus


class Budget(models.Model):
    """A soft spend target for a department and period; thresholds alert the owners."""

    class Period(models.TextChoices):
        MONTH = "month"
        QUARTER = "quarter"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="budgets")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="budgets")
    amount = AmountField()
    currency = models.CharField(max_length=3, default="USD")
    period = models.CharField(max_length=10, choices=Period.choices, default=Period.MONTH)
    thresholds = models.JSONField(default=list)
    owner_emails = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["department", "period"], name="one_budget_per_department_period"
            )
        ]

    def __str__(self):
        return f"{self.department} {self.period} {display.money(self.amount, self.currency)}"


class BudgetAlert(models.Model):
    """One row per (budget, period, kind, threshold): the unique key makes an alert happen once."""

    class Kind(models.TextChoices):
        THRESHOLD = "threshold"
        FORECAST = "forecast"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="budget_alerts"
    )
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    threshold = models.PositiveIntegerField(default=0)
    spend = AmountField(default=ZERO)
    forecast = AmountField(null=True, blank=True, help_text="period-end projection (forecast)")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "kind", "threshold"], name="budget_alert_once"
            )
        ]

    def __str__(self):
        return f"{self.kind} {self.threshold}% {self.period_start} {self.status}"


class WalletAlert(models.Model):
    """A wallet's change to low or depleted, emailed once: the unique key is (wallet, funding
    entry, state), so each allocation can turn its wallet low once and depleted once."""

    State = WalletStatus

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="wallet_alerts"
    )
    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="alerts")
    funding_entry = models.ForeignKey(
        LedgerEntry,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="the allocation (or credit) whose funds ran low",
    )
    state = models.CharField(max_length=20, choices=State.choices)
    available = AmountField(default=ZERO)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["wallet", "funding_entry", "state"], name="wallet_alert_once"
            )
        ]

    def __str__(self):
        return f"{self.wallet} {self.state} {self.status}"
