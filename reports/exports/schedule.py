"""The monthly exports: on the 1st, every organization's previous-month `chargeback` and
`events` files (the finance contacts are emailed when each is ready: reports/exports/notify.py)."""

from datetime import datetime, timedelta

from django.db import transaction

from chargeback.models import Organization
from chargeback.periods import local_today
from reports.exports.notify import SCHEDULE_ACTOR
from reports.exports.services import export_job_create
from reports.models import ExportJob

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
