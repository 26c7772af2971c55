"""Thin Celery tasks: take ids, call one service. Both are idempotent. The run task lives beside
its service (reports/exports/running.py), which export_job_create enqueues."""

from celery import shared_task

from reports.exports.running import export_job_run_task
from reports.exports.schedule import export_jobs_schedule_monthly

__all__ = ["export_job_run_task", "export_jobs_monthly_task"]


@shared_task(name="reports.export_jobs_monthly")
def export_jobs_monthly_task() -> list[str]:
    return [job.id for job in export_jobs_schedule_monthly()]
