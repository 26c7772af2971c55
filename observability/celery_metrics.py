"""Celery task metrics from Celery's signals, in whichever process runs the task (a worker's
pool process, or the web process for an eager task): runs by outcome, durations, and for the
export task the job's duration and rows (read back from its ExportJob row).

A worker serves them on KT_CELERY_METRICS_PORT (every pool process summed through
PROMETHEUS_MULTIPROC_DIR, which the worker clears when it starts; a pool process that exits is
marked dead so its live gauges go, its counters stay).
"""

import logging
import os
import time

from celery import signals
from django.conf import settings
from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

TASK_RUNS = Counter(
    "kt_celery_task_runs",
    "Celery task runs, by outcome (success, failure, retry).",
    ["task", "outcome"],
)
TASK_FAILURES = Counter("kt_celery_task_failures", "Celery task runs that raised.", ["task"])
TASK_SECONDS = Histogram(
    "kt_celery_task_duration_seconds",
    "Celery task run time.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 600),
)
EXPORT_SECONDS = Histogram(
    "kt_export_job_duration_seconds",
    "Export jobs, started to finished, by type, format and status.",
    ["type", "format", "status"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
)
EXPORT_ROWS = Counter("kt_export_rows", "Rows written by export jobs.", ["type", "format"])

EXPORT_TASK = "reports.export_job_run"
_started: dict[str, float] = {}


def _prerun(task_id=None, task=None, **kwargs):
    _started[task_id] = time.perf_counter()


def _postrun(task_id=None, task=None, args=None, kwargs=None, state=None, **extra):
    started = _started.pop(task_id, None)
    name = getattr(task, "name", "") or "unknown"
    if started is not None:
        TASK_SECONDS.labels(name).observe(time.perf_counter() - started)
    outcome = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry"}.get(state)
    TASK_RUNS.labels(name, outcome or str(state).lower()).inc()
    if name == EXPORT_TASK:
        job_id = (args or [None])[0] or (kwargs or {}).get("job_id")
        _export_finished(job_id)


def _failure(sender=None, **kwargs):
    TASK_FAILURES.labels(getattr(sender, "name", "") or "unknown").inc()


def _export_finished(job_id) -> None:
    from reports.models import ExportJob

    job = ExportJob.objects.filter(pk=job_id).first() if job_id else None
    if job is None or job.status not in (ExportJob.Status.COMPLETED, ExportJob.Status.FAILED):
        return
    if job.started_at and job.finished_at:
        seconds = (job.finished_at - job.started_at).total_seconds()
        EXPORT_SECONDS.labels(job.type, job.format, job.status).observe(seconds)
    if job.status == ExportJob.Status.COMPLETED:
        EXPORT_ROWS.labels(job.type, job.format).inc(job.rows_written)


def _worker_init(**kwargs):
    """The worker's main process, before its pool starts: a fresh multiprocess directory."""
    from observability.exposition import multiproc_dir_reset

    multiproc_dir_reset()


def _worker_ready(**kwargs):
    if settings.KT_CELERY_METRICS_PORT:
        from observability.exposition import serve_worker_metrics

        serve_worker_metrics(settings.KT_CELERY_METRICS_PORT)


def _process_shutdown(pid=None, **kwargs):
    from observability.exposition import process_dead
    from observability.recorder import flush

    flush()  # a pool process may exit without atexit: what it queued (expired holds) first
    process_dead(pid or os.getpid())


def connect() -> None:
    signals.task_prerun.connect(_prerun, weak=False)
    signals.task_postrun.connect(_postrun, weak=False)
    signals.task_failure.connect(_failure, weak=False)
    signals.worker_init.connect(_worker_init, weak=False)
    signals.worker_ready.connect(_worker_ready, weak=False)
    signals.worker_process_shutdown.connect(_process_shutdown, weak=False)
