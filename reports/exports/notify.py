"""The email to an organization's finance contacts when its monthly export is ready."""

import logging

from django.conf import settings
from django.contrib.admin.utils import quote
from django.core.mail import send_mail
from django.urls import reverse

from chargeback import display
from reports.models import ExportJob

logger = logging.getLogger(__name__)

# `requested_by` of the monthly jobs: how the schedule finds its own jobs and knows to email.
SCHEDULE_ACTOR = "system:monthly-exports"


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
        f"Rows: {display.count(job.rows_written)}",
    ]
    for currency, values in sorted(totals.items()):
        amount = values.get("spend") or values.get("cost")
        if amount is not None:
            lines.append(f"Total spend: {display.money(amount, currency)}")
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
