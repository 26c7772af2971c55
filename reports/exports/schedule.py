"""The monthly exports: on the 1st, every organization's previous-month `chargeback` and
`events` files, and an email to its finance contacts when each is ready."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.admin.utils import quote
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from chargeback.models import Organization
from chargeback.periods import local_today
from reports.exports.services import SCHEDULE_ACTOR, export_job_create
from reports.models import ExportJob

logger = logging.getLogger(__name__)

MONTHLY_TYPES = ("chargeback", "events")
MONTHLY_FORMAT = "csv"


def export_jobs_schedule_monthly(*, now: datetime | None = None) -> list[ExportJob]:
    """Create the previous month's exports for every organization whose local date is the 1st or
    2nd (beat runs hourly on those UTC days, so every time zone gets its turn after its own
    midnight). Idempotent: a job that exists for the same organization, type and month is not
    created again, even by two beats at once (the organization row is locked while checking)."""
    created = []
    for org_id in Organization.objects.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            org = Organization.objects.select_for_update().get(pk=org_id)
            today = local_today(org, now)
            if today.day > 2:
                continue
            date_to = today.replace(day=1) - timedelta(days=1)
            date_from = date_to.replace(day=1)
            for export_type in MONTHLY_TYPES:
                if ExportJob.objects.filter(
                    organization=org,
                    type=export_type,
                    format=MONTHLY_FORMAT,
                    date_from=date_from,
                    date_to=date_to,
                    requested_by=SCHEDULE_ACTOR,
                ).exists():
                    continue
                created.append(
                    export_job_create(
                        organization=org,
                        type=export_type,
                        format=MONTHLY_FORMAT,
                        date_from=date_from,
                        date_to=date_to,
                        actor=SCHEDULE_ACTOR,
                        via="system",
                    )
                )
    return created


def export_job_admin_url(job: ExportJob) -> str:
    """The admin page of the job: it needs a staff login, unlike a bearer-token API link.
    The id is quoted as the admin's own links are: the admin reads `_22` in a URL as `"`."""
    path = reverse("admin:reports_exportjob_change", args=[quote(job.pk)])
    return f"{settings.SITE_URL.rstrip('/')}{path}"


def export_job_notify(*, job: ExportJob) -> bool:
    """Email the organization's finance contacts that a scheduled export is ready. Runs once per
    job (when it completes); a mail failure is logged and leaves the job completed."""
    recipients = list(job.organization.finance_emails or [])
    if job.status != ExportJob.Status.COMPLETED or not recipients:
        return False
    month = f"{job.date_from:%B %Y}"
    totals = job.manifest.get("totals", {})
    lines = [
        f"The {job.type} export of {job.organization.name} for {month} is ready.",
        "",
        f"Download it from the admin: {export_job_admin_url(job)}",
        f"Rows: {job.rows_written}",
    ]
    for currency, values in sorted(totals.items()):
        amount = values.get("spend") or values.get("cost")
        if amount is not None:
            lines.append(f"Total spend: {amount} {currency}")
    lines.append(f"SHA-256: {job.manifest.get('file', {}).get('sha256', '')}")
    try:
        send_mail(
            subject=f"[AI spend] {job.type} export for {month}",
            message="\n".join(lines),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
        )
    except Exception:  # the file is built; a mail outage must not fail it
        logger.exception("could not email export %s", job.id)
        return False
    return True
