"""Cost tickets: a request no wallet of its chain could cover, waiting for finance (issue 14.3).

A ticket is opened by the gateway's refusal (gateway/proxy.py `_reject`) and then approved,
denied or left to expire (wallets/tickets/services.py). An approved ticket is redeemed once by
a retried request carrying `X-KT-Ticket`: its hold is placed on the ticket's wallet past zero,
by at most the ticket's estimate (the recorded, audited overdraft).
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from chargeback.models import ConsumerGroup, Department, Organization
from chargeback.money import AmountField


class CostTicket(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        DENIED = "denied"
        EXPIRED = "expired"
        REDEEMED = "redeemed"
        CANCELLED = "cancelled"

    ticket_id = models.CharField(max_length=40, unique=True, help_text="tkt_...")
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="cost_tickets"
    )
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="cost_tickets"
    )
    consumer_group = models.ForeignKey(
        ConsumerGroup,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="cost_tickets",
    )
    # The wallet that would have paid: the last of the request's chain (the organization's, or
    # a strict department's team wallet); the approved overdraft is granted on it.
    wallet = models.ForeignKey(
        "wallets.Wallet", on_delete=models.PROTECT, related_name="cost_tickets"
    )
    user_ref = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    estimate = AmountField(help_text="the refused request's worst case")
    currency = models.CharField(max_length=3)
    request_id = models.CharField(max_length=100, help_text="the refused request")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=200, blank=True)
    redeemed_at = models.DateTimeField(null=True, blank=True)
    redeemed_request_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # What the sweeper closes: pending and approved tickets past their expiry.
            models.Index(
                fields=["expires_at"],
                condition=Q(status__in=["pending", "approved"]),
                name="ticket_open_expiry",
            ),
            models.Index(
                fields=["organization", "status", "-created_at"], name="ticket_org_status"
            ),
        ]

    def __str__(self):
        return self.ticket_id


class CostTicketPolicy(models.Model):
    """What a caller experiences when no wallet covers a request: the organization's setting
    (`consumer_group` null) or a consumer group's own, which wins (config `cost_tickets`)."""

    class Mode(models.TextChoices):
        REJECT = "reject", "402 at once, with the ticket"
        WAIT = "wait", "hold the request open up to wait_seconds"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="cost_ticket_policies"
    )
    consumer_group = models.ForeignKey(
        ConsumerGroup,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="cost_ticket_policies",
    )
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.REJECT)
    wait_seconds = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(consumer_group__isnull=True),
                name="one_org_ticket_policy",
            ),
            models.UniqueConstraint(fields=["consumer_group"], name="one_group_ticket_policy"),
        ]

    def __str__(self):
        return f"cost tickets: {self.mode}"
