"""Prepaid wallets (the hard cap), their append-only ledger and holds.

`Wallet.balance` is the running sum of the wallet's ledger entries and `Wallet.held` the sum of
its pending holds; both are updated in the same transaction as the rows they summarise, so that
a hold can be placed with one conditional UPDATE. available = balance - held.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from chargeback import display
from chargeback.models import Department, Organization
from chargeback.money import ZERO, AmountField


class WalletStatus(models.TextChoices):
    """How a wallet stands (wallets.selectors.wallet_status decides)."""

    HEALTHY = "healthy"
    LOW = "low"
    DEPLETED = "depleted"


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

    # Indexed by ledger_org_time (its first column), as wallet by ledger_wallet_time.
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="ledger_entries", db_index=False
    )
    # Indexed by ledger_wallet_time, whose first column it is: no index of its own.
    wallet = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = AmountField(help_text="signed: positive adds funds, negative spends them")
    balance_after = AmountField()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=500, blank=True)
    # NULL, not "", so that the unique constraint ignores entries without a key.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    request_hash = models.CharField(max_length=64, blank=True)
    # The capture's hold, kept as an id without a database constraint: resolved holds are
    # deleted after KT_HOLD_RETENTION_DAYS (wallets/retention.py) while the ledger, append-only,
    # keeps its entries untouched; what audit needs of the request is here (amount, `reference`
    # = request id, time) and in its usage event. Only capture entries have a hold, and
    # ledger_one_capture_per_hold indexes exactly those: no index of its own.
    hold = models.ForeignKey(
        "Hold",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="entries",
        db_constraint=False,
        db_index=False,
    )
    reference = models.CharField(max_length=200, blank=True, help_text="request id, event id, …")
    # The two entries of a transfer (an allocation, a reclaim: wallets/services/transfers.py)
    # share it, `trf_...`; blank for every other entry.
    # Indexed only where set (ledger_transfer): blank on every capture, the bulk of the ledger.
    transfer_id = models.CharField(max_length=40, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

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
        indexes = [
            # Ascending: read newest first by a backward scan just as well, and new entries go
            # to the right edge, so pages split full (descending, they split in half: 61
            # against 36 bytes per entry, bench/index_cost.py).
            models.Index(fields=["wallet", "created_at"], name="ledger_wallet_time"),
            # One organization's entries by time (admin, chargeback export): one index instead
            # of one on organization_id and one on created_at across every tenant.
            models.Index(fields=["organization", "created_at"], name="ledger_org_time"),
            models.Index(
                fields=["transfer_id"], condition=~Q(transfer_id=""), name="ledger_transfer"
            ),
            # The few entries that are not spend, so that a wallet's totals, last funding and
            # status never read its (millions of) captures: wallets/selectors.py derives spent
            # from the balance and these. `amount` is included for index-only scans.
            models.Index(
                fields=["wallet", "-created_at", "-id"],
                condition=Q(kind__in=["allocation", "credit"]),
                include=["amount"],
                name="ledger_wallet_funding",
            ),
            models.Index(
                fields=["wallet"],
                condition=Q(kind__in=["reclaim", "adjustment"]),
                include=["amount"],
                name="ledger_wallet_reclaim_adjust",
            ),
            # A call's earlier refunds (wallets/services/refunds.py), without reading the
            # wallet's captures. Refunds are few: the index is too.
            models.Index(
                fields=["wallet", "reference"],
                condition=Q(kind="refund"),
                include=["amount"],
                name="ledger_refund_reference",
            ),
            # The capture a refund names by request id has a hash index on PostgreSQL,
            # `ledger_capture_reference` (wallets/migrations/0011_refund_lookup_indexes.py):
            # one per capture, 4-byte hash codes instead of a B-tree of 40-character ids.
        ]

    def __str__(self):
        return f"{self.kind} {display.amount(self.amount, self.currency)}"

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
    # The caller's department, whichever wallet of the cascade holds (wallets/cascade.py): the
    # sweeper's placeholder event of an expired hold is attributed to it. No database
    # constraint, like the usage event's references (a check per insert locked the row).
    department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="holds",
        db_constraint=False,
        db_index=False,
    )
    # Unique by a constraint, not `unique=True`: that would add a second, `_like` index
    # (varchar_pattern_ops) that no query uses, as large as the unique one.
    request_id = models.CharField(max_length=100)
    amount = AmountField()
    captured_amount = AmountField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="hold_amount_not_negative"),
            models.UniqueConstraint(fields=["request_id"], name="hold_request_id_unique"),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="pending"), name="hold_pending_expiry"
            )
        ]

    def __str__(self):
        return f"hold {self.request_id} {self.status}"


from wallets.models_tickets import CostTicket, CostTicketPolicy  # noqa: E402, F401  (cost tickets)
