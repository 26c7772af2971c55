"""Export jobs: create (validate, record, enqueue), run (stream rows to a temporary file, save it
into default storage with its manifest) and download (audited)."""

import gc
import logging
import tempfile
import time
from datetime import date, timedelta
from itertools import islice

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError, Conflict
from chargeback.models import Department, Organization
from chargeback.periods import day_range
from reports.exports.manifest import manifest_build, sha256_of
from reports.exports.progress import Progress
from reports.exports.rows import ExportContext, Totals, builder_for
from reports.exports.writers import CONTENT_TYPES, writer_for
from reports.models import ExportJob

logger = logging.getLogger(__name__)

# A running job whose worker died is taken over after this long (longer than any real run).
EXPORT_TIME_LIMIT_SECONDS = 3600
PROGRESS_EVERY_SECONDS = 0.5
BATCH_ROWS = 2000
# `requested_by` of the monthly jobs: how the schedule finds its own jobs and knows to email.
SCHEDULE_ACTOR = "system:monthly-exports"
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
    from reports.tasks import export_job_run_task

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


def export_context(job: ExportJob) -> ExportContext:
    org = job.organization
    start, end = day_range(org, job.date_from, job.date_to)
    department = None
    if job.filters.get("team_id"):
        department = Department.objects.get(organization=org, team_id=job.filters["team_id"])
    return ExportContext(
        organization=org,
        date_from=job.date_from,
        date_to=job.date_to,
        start=start,
        end=end,
        filters=job.filters,
        department=department,
    )


def export_file_name(job: ExportJob) -> str:
    """What the person downloading sees: acme_events_2026-05-01_2026-05-31.csv."""
    return f"{job.organization.slug}_{job.type}_{job.date_from}_{job.date_to}.{job.format}"


def export_job_run(*, job_id: str) -> ExportJob | None:
    """Build the job's file. Idempotent: a completed or failed job is returned untouched, a job
    another worker is running is left alone (unless that run is older than the time limit: its
    worker died). On any error the job is `failed` with the reason and no file is kept."""
    now = timezone.now()
    stale = now - timedelta(seconds=EXPORT_TIME_LIMIT_SECONDS)
    claimed = (
        ExportJob.objects.filter(pk=job_id)
        .filter(
            Q(status=ExportJob.Status.QUEUED)
            | Q(status=ExportJob.Status.RUNNING, started_at__lt=stale)
        )
        .update(status=ExportJob.Status.RUNNING, started_at=now, rows_written=0, error="")
    )
    job = ExportJob.objects.select_related("organization").filter(pk=job_id).first()
    if not claimed or job is None:
        return job
    try:
        _build(job)  # removes its own partial file when it fails
    except Exception as exc:  # any failure must end as a failed job, not a stuck one
        logger.exception("export %s failed", job.id)
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportJob.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            file="",
            manifest={},
            finished_at=timezone.now(),
        )
        job.refresh_from_db()
        return job
    job.refresh_from_db()
    if job.requested_by == SCHEDULE_ACTOR:
        from reports.exports.schedule import export_job_notify

        export_job_notify(job=job)
    return job


def _build(job: ExportJob) -> str:
    """Write, store and complete; returns the stored name. Cleans up its own file on failure."""
    ctx = export_context(job)
    builder = builder_for(job.type)
    columns = builder.columns(ctx)
    ExportJob.objects.filter(pk=job.pk).update(rows_expected=builder.count(ctx))
    totals = Totals()
    name = export_file_name(job)
    written = 0
    with tempfile.TemporaryFile(prefix="kt-export-") as tmp:
        writer = writer_for(job.format, tmp, columns, title=job.type)
        last = time.monotonic()
        progress = Progress(job.pk)
        # The loop makes millions of short-lived tuples that reference counting frees; the cyclic
        # collector would only rescan the long-lived heap over and over (~15 % of the CPU).
        collecting = gc.isenabled()
        gc.disable()
        try:
            with progress.reading():
                rows = builder.rows(ctx, totals)
                while batch := list(islice(rows, BATCH_ROWS)):
                    writer.write_many(batch)
                    written += len(batch)
                    # Progress for `kt export-jobs create --wait`, twice a second at most.
                    if time.monotonic() - last > PROGRESS_EVERY_SECONDS:
                        progress.report(written)
                        last = time.monotonic()
        finally:
            progress.close()
            if collecting:
                gc.enable()
        writer.close()
        tmp.flush()
        sha256, size = sha256_of(tmp)
        tmp.seek(0)
        stored = default_storage.save(
            f"exports/{job.organization_id}/{job.id}/{name}", File(tmp, name=name)
        )
    try:
        manifest = manifest_build(
            job=job,
            ctx=ctx,
            columns=columns,
            row_count=written,
            totals=totals,
            file_name=name,
            sha256=sha256,
            size=size,
            content_type=CONTENT_TYPES[job.format],
        )
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportJob.Status.COMPLETED,
            rows_written=written,
            rows_expected=written,
            file=stored,
            manifest=manifest,
            finished_at=timezone.now(),
        )
    except Exception:
        default_storage.delete(stored)
        raise
    return stored


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
