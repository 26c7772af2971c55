"""Export jobs and provider invoices (for reconciliation)."""

import secrets

from django.db import models
from django.utils import timezone

from chargeback import display
from chargeback.models import Organization
from chargeback.money import AmountField


def new_job_id():
    return f"job_{secrets.token_hex(8)}"


class ExportJob(models.Model):
    class Type(models.TextChoices):
        EVENTS = "events"
        CHARGEBACK = "chargeback"
        FOCUS = "focus"
        AUDIT_LOG = "audit-log"

    class Format(models.TextChoices):
        CSV = "csv"
        JSONL = "jsonl"
        JSON = "json"
        XLSX = "xlsx"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=40, default=new_job_id, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="export_jobs"
    )
    type = models.CharField(max_length=20, choices=Type.choices)
    format = models.CharField(max_length=10, choices=Format.choices)
    date_from = models.DateField()
    date_to = models.DateField()
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    rows_written = models.PositiveBigIntegerField(default=0)
    rows_expected = models.PositiveBigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    requested_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="export_org_time")]

    def __str__(self):
        return self.id


class ProviderInvoice(models.Model):
    """What a provider billed for one month, imported for reconciliation."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="provider_invoices"
    )
    provider = models.CharField(max_length=20)
    period = models.DateField(help_text="first day of the billed month")
    amount = AmountField()
    currency = models.CharField(max_length=3, default="USD")
    reference = models.CharField(max_length=200, blank=True)
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-period", "provider"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "provider", "period"], name="one_invoice_per_month"
            )
        ]

    def __str__(self):
        return f"{self.provider} {self.period:%Y-%m} {display.money(self.amount, self.currency)}"
