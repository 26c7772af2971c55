"""Export jobs: create (validate, record, enqueue the run: reports/exports/running.py) and
download (audited)."""

import logging
from datetime import date

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError, Conflict
from chargeback.models import Department, Organization
from reports.exports.running import export_job_run_task
from reports.models import ExportJob

logger = logging.getLogger(__name__)

FILTERS = {
    "events": {"team_id", "provider"},
    "focus": {"team_id", "provider"},
    "chargeback": {"team_id"},
    "audit-log": set(),
}


def _invalid(message: str, field: str) -> ApplicationError:
    return ApplicationError(message, field=field)


def _parse_date(value, field: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _invalid(f"{field} must be a date like 2026-05-31, not {value!r}", field) from None


def export_job_validate(*, organization, type, format, date_from, date_to, filters) -> tuple:
    if type not in ExportJob.Type.values:
        raise _invalid(
            f"unknown type {type!r}: use one of {', '.join(ExportJob.Type.values)}", "type"
        )
    if format not in ExportJob.Format.values:
        raise _invalid(
            f"unknown format {format!r}: use one of {', '.join(ExportJob.Format.values)}", "format"
        )
    date_from = _parse_date(date_from, "date_from")
    date_to = _parse_date(date_to, "date_to")
    if date_from > date_to:
        raise _invalid(f"date_from {date_from} is after date_to {date_to}", "date_to")
    days = (date_to - date_from).days + 1
    if days > settings.KT_EXPORT_MAX_DAYS:
        raise _invalid(
            f"the range covers {days} days; at most {settings.KT_EXPORT_MAX_DAYS} per export",
            "date_to",
        )
    filters = dict(filters or {})
    unknown = set(filters) - FILTERS[type]
    if unknown:
        allowed = ", ".join(sorted(FILTERS[type])) or "none"
        raise _invalid(
            f"unknown filter {', '.join(sorted(unknown))} for {type} (allowed: {allowed})",
            "filters",
        )
    filters = {k: str(v) for k, v in filters.items() if v not in (None, "")}
    if (
        "team_id" in filters
        and not Department.objects.filter(
            organization=organization, team_id=filters["team_id"]
        ).exists()
    ):
        raise _invalid(f"no department with team_id {filters['team_id']!r}", "filters")
    return date_from, date_to, filters


def export_job_create(
    *,
    organization: Organization,
    type: str,
    format: str = "csv",
    date_from,
    date_to,
    filters: dict | None = None,
    actor: str = "",
    via: str = "api",
) -> ExportJob:
    """Validate, record the job and its audit row, and enqueue the run once the row is committed.

    Bad input raises ApplicationError (with `field`) and writes nothing.
    """
    date_from, date_to, filters = export_job_validate(
        organization=organization,
        type=type,
        format=format,
        date_from=date_from,
        date_to=date_to,
        filters=filters,
    )
    with transaction.atomic():
        job = ExportJob.objects.create(
            organization=organization,
            type=type,
            format=format,
            date_from=date_from,
            date_to=date_to,
            filters=filters,
            requested_by=actor or "system",
        )
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="export.requested",
            obj=job,
            after={
                "type": type,
                "format": format,
                "date_from": date_from,
                "date_to": date_to,
                "filters": filters,
            },
        )
        # The worker must find the row: enqueue only after it is committed.
        transaction.on_commit(lambda: export_job_run_task.delay(job.id))
    return job


def export_job_download(*, job: ExportJob, actor: str = "", via: str = "api"):
    """Open a completed job's file for reading and record who downloaded it.

    Raises Conflict (409) while the job is not completed.
    """
    if job.status != ExportJob.Status.COMPLETED or not job.file:
        raise Conflict(f"export {job.id} is {job.status}: download it once it is completed")
    handle = default_storage.open(job.file.name, "rb")
    audit_record(
        organization=job.organization,
        actor=actor,
        via=via,
        action="export.downloaded",
        obj=job,
        after={"sha256": job.manifest.get("file", {}).get("sha256", "")},
    )
    return handle
