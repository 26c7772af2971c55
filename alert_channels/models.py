"""Alert channels (where an organization's alerts go besides e-mail) and their deliveries (one
row per event and channel: the unique key makes each delivery happen once)."""

from django.db import models
from django.utils import timezone

from chargeback.models import Department, Organization

# Event types, in the webhook body's `type` (docs/operations.md "Alert channels").
BUDGET_THRESHOLD = "budget.threshold_crossed"
BUDGET_FORECAST = "budget.forecast_over"
WALLET_LOW = "wallet.low"
WALLET_DEPLETED = "wallet.depleted"
EXPORT_READY = "export.ready"
COST_TICKET_OPENED = "cost_ticket.opened"
COST_TICKET_APPROVED = "cost_ticket.approved"
COST_TICKET_DENIED = "cost_ticket.denied"
COST_TICKET_EXPIRED = "cost_ticket.expired"
TEST = "test"
EVENT_TYPES = [
    BUDGET_THRESHOLD,
    BUDGET_FORECAST,
    WALLET_LOW,
    WALLET_DEPLETED,
    EXPORT_READY,
    COST_TICKET_OPENED,
    COST_TICKET_APPROVED,
    COST_TICKET_DENIED,
    COST_TICKET_EXPIRED,
]


class AlertChannel(models.Model):
    """A Slack incoming webhook or a generic HTTPS webhook of one organization.

    Scope: the whole organization (no department), one department (department, no period) or
    one budget (department and period: a budget is unique per department and period, so this
    names it without this app depending on budgets). Organization-wide events (export ready)
    go only to organization-wide channels."""

    class Kind(models.TextChoices):
        SLACK = "slack"
        WEBHOOK = "webhook"

    class Period(models.TextChoices):
        MONTH = "month"
        QUARTER = "quarter"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="alert_channels"
    )
    name = models.SlugField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    url = models.URLField(max_length=2000, help_text="where the events are POSTed (https)")
    department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_channels",
        help_text="only this department's events (empty: the whole organization's)",
    )
    budget_period = models.CharField(
        max_length=10,
        choices=Period.choices,
        blank=True,
        help_text="only the department's budget of this period (needs a department)",
    )
    events = models.JSONField(
        default=list, blank=True, help_text=f"event types to send (empty: all): {EVENT_TYPES}"
    )
    is_active = models.BooleanField(default=True)
    # The webhook signing secret, encrypted with KT_SECRETS_KEY (chargeback/secretbox.py); it
    # is needed in clear to sign, so it cannot be hashed. Empty for Slack (its URL is the key).
    secret_ciphertext = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="alert_channel_name_per_organization"
            )
        ]

    def __str__(self):
        return f"{self.name} ({self.kind})"

    @property
    def scope(self) -> str:
        if self.department_id is None:
            return "organization"
        return "budget" if self.budget_period else "department"


class ChannelDelivery(models.Model):
    """One event sent (or being sent) to one channel. Unique per (channel, event_key): however
    often an event is published, each channel gets one delivery of it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="channel_deliveries"
    )
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    event_key = models.CharField(
        max_length=200, help_text="what the event is about, e.g. budget_alert:12"
    )
    event_id = models.UUIDField(help_text="the body's `id`: the same for every channel")
    event_type = models.CharField(max_length=50)
    body = models.JSONField(help_text="the JSON body sent (signed anew at each attempt)")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "channel deliveries"
        constraints = [
            models.UniqueConstraint(fields=["channel", "event_key"], name="channel_delivery_once")
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self):
        return f"{self.event_type} to {self.channel.name} ({self.status})"
