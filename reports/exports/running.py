"""Building an export job's file: claimed once, written in batches with progress, stored with
its manifest; the Celery task that runs it. Emails the finance contacts when a monthly job is
done (reports/exports/notify.py)."""

import gc
import logging
import tempfile
import time
from datetime import timedelta
from itertools import islice

from celery import shared_task
from django.core.files import File
from django.core.files.storage import default_storage
from django.db.models import Q
from django.utils import timezone

from chargeback.models import Department
from chargeback.periods import day_range
from chargeback.replica import replica_reads
from reports.exports.channel_events import export_job_publish
from reports.exports.manifest import manifest_build, sha256_of
from reports.exports.notify import SCHEDULE_ACTOR, export_job_notify
from reports.exports.progress import Progress
from reports.exports.rows import ExportContext, Totals, builder_for
from reports.exports.writers import CONTENT_TYPES, writer_for
from reports.models import ExportJob

logger = logging.getLogger(__name__)

# A running job whose worker died is taken over after this long (longer than any real run).
EXPORT_TIME_LIMIT_SECONDS = 3600
PROGRESS_EVERY_SECONDS = 0.5
BATCH_ROWS = 2000


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
        with replica_reads():  # the rows may come from the replica; the job's updates do not
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
        export_job_notify(job=job)
    export_job_publish(job=job)  # every completed job, to the organization's alert channels
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


@shared_task(
    name="reports.export_job_run",
    soft_time_limit=EXPORT_TIME_LIMIT_SECONDS - 60,
    time_limit=EXPORT_TIME_LIMIT_SECONDS,
)
def export_job_run_task(job_id: str) -> str | None:
    """Thin: takes the id, runs the idempotent service."""
    job = export_job_run(job_id=job_id)
    return job.status if job else None
