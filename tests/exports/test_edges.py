"""Edges: months clipped to the range, spend without a department, xlsx sheet limits, progress
seen by other connections while a file is being written."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, connections
from openpyxl import load_workbook

from gateway.models import UsageEvent
from reports.exports import writers
from reports.exports.progress import Progress
from reports.exports.running import export_job_run
from reports.exports.services import export_job_create
from reports.models import ExportJob
from tests.exports.usage import fund, record_usage
from tests.factories import DepartmentFactory


def _run(org, **kwargs):
    kwargs = {"format": "csv", **kwargs}
    job = export_job_run(job_id=export_job_create(organization=org, **kwargs).id)
    assert job.status == "completed", job.error
    return job


def _csv(job):
    with default_storage.open(job.file.name, "rb") as fh:
        return list(csv.DictReader(io.StringIO(fh.read().decode(), newline="")))


@pytest.mark.django_db
def test_chargeback_gives_one_row_per_month_clipped_to_the_range(org, engineering, model):
    fund(engineering)
    for at in [
        datetime(2026, 4, 10),
        datetime(2026, 4, 20),
        datetime(2026, 5, 5),
        datetime(2026, 6, 9),
    ]:
        record_usage(department=engineering, at=at.replace(tzinfo=UTC), model=model)
    rows = _csv(_run(org, type="chargeback", date_from="2026-04-15", date_to="2026-06-10"))
    assert [(r["month"], r["period_start"], r["period_end"], r["requests"]) for r in rows] == [
        ("2026-04", "2026-04-15", "2026-04-30", "1"),
        ("2026-05", "2026-05-01", "2026-05-31", "1"),
        ("2026-06", "2026-06-01", "2026-06-10", "1"),
    ]


@pytest.mark.django_db
def test_spend_without_a_department_is_its_own_chargeback_row(
    org, engineering, model, outsider_org
):
    # The outsider has the same two calls: one of them without a department too.
    twin = DepartmentFactory(organization=outsider_org, team_id="team_engineering")
    for department in (engineering, twin):
        fund(department)
        event = record_usage(
            department=department, at=datetime(2026, 5, 5, tzinfo=UTC), model=model
        )
        UsageEvent.objects.filter(pk=event.pk).update(department=None)
        record_usage(department=department, at=datetime(2026, 5, 6, tzinfo=UTC), model=model)
    job = _run(org, type="chargeback", date_from="2026-05-01", date_to="2026-05-31")
    rows = _csv(job)
    assert [(r["team_id"], r["department"], r["requests"]) for r in rows] == [
        ("team_engineering", "Engineering", "1"),
        ("", "(no department)", "1"),
    ]
    assert sum(Decimal(r["spend"]) for r in rows) == Decimal(job.manifest["totals"]["USD"]["spend"])
    assert Decimal(job.manifest["totals"]["USD"]["spend_exact"]) == sum(
        UsageEvent.objects.filter(organization=org).values_list("cost", flat=True)
    )


@pytest.mark.django_db
def test_xlsx_starts_a_new_sheet_at_the_row_limit(org, engineering, model, monkeypatch):
    monkeypatch.setattr(writers, "XLSX_MAX_ROWS", 3)  # header + 2 rows per sheet
    fund(engineering)
    for day in range(1, 6):
        record_usage(department=engineering, at=datetime(2026, 5, day, tzinfo=UTC), model=model)
    job = _run(org, type="events", format="xlsx", date_from="2026-05-01", date_to="2026-05-31")
    with default_storage.open(job.file.name, "rb") as fh:
        book = load_workbook(io.BytesIO(fh.read()), read_only=True)
    assert book.sheetnames == ["events", "events (2)", "events (3)"]
    sizes = [len(list(book[name].values)) - 1 for name in book.sheetnames]
    assert sizes == [2, 2, 1]
    assert all(next(book[name].values)[0] == "created_at" for name in book.sheetnames)


@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_to_other_connections_while_rows_are_read(org):
    job = ExportJob.objects.create(
        organization=org, type="events", format="csv", date_from="2026-05-01", date_to="2026-05-31"
    )
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    progress = Progress(job.pk)
    try:
        with progress.reading():
            progress.report(4000)
            with other.cursor() as cursor:
                cursor.execute("SELECT rows_written FROM reports_exportjob WHERE id = %s", [job.pk])
                assert cursor.fetchone() == (4000,)
    finally:
        progress.close()
        other.close()
