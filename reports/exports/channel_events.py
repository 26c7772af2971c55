"""`export.ready` on the organization's alert channels (alert_channels/), with the facts of the
finance e-mail (reports/exports/notify.py). Published once per completed job (the event key is
the job id; alert_channels keeps one delivery per event and channel). A channel problem is
logged and never fails the export."""

import logging

from alert_channels.models import EXPORT_READY
from alert_channels.services.deliveries import event_publish
from reports.exports.notify import export_job_admin_url
from reports.models import ExportJob

logger = logging.getLogger(__name__)


def export_job_facts(job: ExportJob) -> dict:
    month = f"{job.date_from:%B %Y}"
    totals = job.manifest.get("totals", {})
    return {
        "subject": f"[AI spend] {job.type} export for {month}",
        "headline": f"The {job.type} export of {job.organization.name} for {month} is ready.",
        "job_id": job.pk,
        "export_type": job.type,
        "format": job.format,
        "date_from": job.date_from.isoformat(),
        "date_to": job.date_to.isoformat(),
        "rows": job.rows_written,
        "totals": {
            currency: values.get("spend") or values.get("cost")
            for currency, values in sorted(totals.items())
        },
        "sha256": job.manifest.get("file", {}).get("sha256", ""),
        "url": export_job_admin_url(job),
    }


def export_job_publish(*, job: ExportJob) -> int:
    if job.status != ExportJob.Status.COMPLETED:
        return 0
    try:
        created = event_publish(
            organization_id=job.organization_id,
            event_type=EXPORT_READY,
            event_key=f"export_job:{job.pk}",
            facts=export_job_facts(job),
            occurred_at=job.finished_at or job.created_at,
        )
    except Exception:  # the file is built; a channel problem must not fail it
        logger.exception("could not publish export %s to the alert channels", job.pk)
        return 0
    return len(created)
