"""The monthly exports on the 1st: every organization, previous month, once, with an email."""

from datetime import UTC, date, datetime

import pytest
from django.conf import settings
from django.contrib.admin.utils import quote
from django.core import mail

from reports.exports.notify import export_job_notify
from reports.exports.running import export_job_run
from reports.exports.schedule import export_jobs_schedule_monthly
from reports.models import ExportJob

pytestmark = pytest.mark.django_db


def test_beat_has_the_monthly_exports_entry():
    entry = settings.CELERY_BEAT_SCHEDULE["exports-monthly"]
    assert entry["task"] == "reports.export_jobs_monthly"
    from portal.celery import app

    app.loader.import_default_modules()
    assert "reports.export_jobs_monthly" in app.tasks


def test_it_builds_the_previous_month_for_every_organization_once(org, outsider_org):
    org.finance_emails = ["finance@acme.example"]
    org.save()
    now = datetime(2026, 6, 1, 0, 20, tzinfo=UTC)
    created = export_jobs_schedule_monthly(now=now)
    assert sorted((j.organization.slug, j.type) for j in created) == [
        ("acme", "chargeback"),
        ("acme", "events"),
        ("outsider", "chargeback"),
        ("outsider", "events"),
    ]
    assert {(j.date_from.isoformat(), j.date_to.isoformat()) for j in created} == {
        ("2026-05-01", "2026-05-31")
    }
    assert export_jobs_schedule_monthly(now=now) == []
    assert export_jobs_schedule_monthly(now=datetime(2026, 6, 2, 5, tzinfo=UTC)) == []
    assert ExportJob.objects.count() == 4


def test_an_organization_still_in_the_last_day_waits_for_its_own_midnight(org):
    org.time_zone = "America/Los_Angeles"
    org.save()
    assert export_jobs_schedule_monthly(now=datetime(2026, 6, 1, 0, 20, tzinfo=UTC)) == []
    created = export_jobs_schedule_monthly(now=datetime(2026, 6, 1, 8, 20, tzinfo=UTC))
    assert {j.date_from.isoformat() for j in created} == {"2026-05-01"}


def test_it_does_nothing_after_the_second_of_the_month(org):
    assert export_jobs_schedule_monthly(now=datetime(2026, 6, 15, tzinfo=UTC)) == []


def test_finance_gets_one_email_per_completed_export_with_an_admin_link(org):
    org.finance_emails = ["finance@acme.example", "cfo@acme.example"]
    org.save()
    jobs = export_jobs_schedule_monthly(now=datetime(2026, 6, 1, 3, tzinfo=UTC))
    for job in jobs:
        export_job_run(job_id=job.id)
        export_job_run(job_id=job.id)  # a redelivered task: no second email
    assert len(mail.outbox) == 2
    message = mail.outbox[0]
    assert message.to == ["finance@acme.example", "cfo@acme.example"]
    assert "May 2026" in message.subject
    change_url = f"{settings.SITE_URL}/admin/reports/exportjob/{quote(jobs[0].id)}/change/"
    assert change_url in message.body
    assert "SHA-256: " in message.body


def test_the_email_reads_its_numbers_for_people(org):
    org.finance_emails = ["finance@acme.example"]
    org.save()
    job = ExportJob.objects.create(
        organization=org,
        type=ExportJob.Type.CHARGEBACK,
        format=ExportJob.Format.CSV,
        date_from=date(2026, 5, 1),
        date_to=date(2026, 5, 31),
        status=ExportJob.Status.COMPLETED,
        rows_written=12345,
        manifest={"totals": {"USD": {"spend": "62000.00"}}, "file": {"sha256": "ab"}},
    )

    assert export_job_notify(job=job)

    body = mail.outbox[0].body
    assert "Rows: 12,345" in body
    assert "Total spend: 62,000.00 USD" in body
