"""Prepaid wallets (the hard cap), their append-only ledger and holds; budgets (soft targets).

`Wallet.balance` is the running sum of the wallet's ledger entries and `Wallet.held` the sum of
its pending holds; both are updated in the same transaction as the rows they summarise, so that
a hold can be placed with one conditional UPDATE. available = balance - held.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from chargeback.models import Department, Organization
from chargeback.money import ZERO, AmountField


class Wallet(models.Model):
    class Scope(models.TextChoices):
        ORGANIZATION = "organization"
        TEAM = "team"
        USER = "user"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="wallets")
    scope = models.CharField(max_length=20, choices=Scope.choices)
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.PROTECT, related_name="wallets"
    )
    user_ref = models.CharField(
        max_length=200, blank=True, help_text="end-user id for user wallets"
    )
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3, default="USD")
    balance = AmountField(default=ZERO)
    held = AmountField(default=ZERO)
    low_threshold_percent = models.PositiveSmallIntegerField(default=10)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["scope", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(held__gte=0), name="wallet_held_not_negative"),
            models.UniqueConstraint(
                fields=["organization"], condition=Q(scope="organization"), name="one_org_wallet"
            ),
            models.UniqueConstraint(
                fields=["organization", "department"],
                condition=Q(scope="team"),
                name="one_team_wallet",
            ),
            models.UniqueConstraint(
                fields=["organization", "user_ref"],
                condition=Q(scope="user"),
                name="one_user_wallet",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def available(self):
        return self.balance - self.held


class LedgerEntry(models.Model):
    """Append-only: corrections are new entries (adjustment, refund), never edits."""

    class Kind(models.TextChoices):
        ALLOCATION = "allocation"
        CREDIT = "credit"
        CAPTURE = "capture"
        RECLAIM = "reclaim"
        ADJUSTMENT = "adjustment"
        REFUND = "refund"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="ledger_entries"
    )
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = AmountField(help_text="signed: positive adds funds, negative spends them")
    balance_after = AmountField()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=500, blank=True)
    # NULL, not "", so that the unique constraint ignores entries without a key.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    request_hash = models.CharField(max_length=64, blank=True)
    hold = models.ForeignKey(
        "Hold", null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    reference = models.CharField(max_length=200, blank=True, help_text="request id, event id, …")
    actor = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="ledger_idempotency_unique",
            ),
            models.UniqueConstraint(
                fields=["hold"], condition=Q(kind="capture"), name="ledger_one_capture_per_hold"
            ),
        ]
        indexes = [models.Index(fields=["wallet", "-created_at"], name="ledger_wallet_time")]

    def __str__(self):
        return f"{self.kind} {self.amount} {self.currency}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError("ledger entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("ledger entries are append-only")


class Hold(models.Model):
    """A reservation of worst-case cost. Resolved exactly once: captured, released or expired."""

    class Status(models.TextChoices):
        PENDING = "pending"
        CAPTURED = "captured"
        RELEASED = "released"
        EXPIRED = "expired"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="holds")
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="holds")
    request_id = models.CharField(max_length=100, unique=True)
    amount = AmountField()
    captured_amount = AmountField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="hold_amount_not_negative")
        ]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="pending"), name="hold_pending_expiry"
            )
        ]

    def __str__(self):
        return f"hold {self.request_id} {self.status}"


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
        return f"{self.department} {self.period} {self.amount} {self.currency}"


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

    class State(models.TextChoices):
        HEALTHY = "healthy"
        LOW = "low"
        DEPLETED = "depleted"

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
