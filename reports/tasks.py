"""Thin Celery tasks: take ids, call one service. Both are idempotent."""

from celery import shared_task

from reports.exports.services import EXPORT_TIME_LIMIT_SECONDS


@shared_task(
    name="reports.export_job_run",
    soft_time_limit=EXPORT_TIME_LIMIT_SECONDS - 60,
    time_limit=EXPORT_TIME_LIMIT_SECONDS,
)
def export_job_run_task(job_id: str) -> str | None:
    from reports.exports.services import export_job_run

    job = export_job_run(job_id=job_id)
    return job.status if job else None


@shared_task(name="reports.export_jobs_monthly")
def export_jobs_monthly_task() -> list[str]:
    from reports.exports.schedule import export_jobs_schedule_monthly

    return [job.id for job in export_jobs_schedule_monthly()]
