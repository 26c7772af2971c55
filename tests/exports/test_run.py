"""Running a job: exactly one build, failures leave nothing half-written."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from reports.exports.rows import events
from reports.exports.running import export_job_run
from reports.exports.services import export_job_create
from reports.models import ExportJob
from tests.exports.usage import fund, record_usage

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(org, engineering, model):
    fund(engineering)
    for day in range(1, 6):
        record_usage(department=engineering, at=datetime(2026, 5, day, tzinfo=UTC), model=model)
    return export_job_create(
        organization=org, type="events", format="csv", date_from="2026-05-01", date_to="2026-05-31"
    )


def _files(root):
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_failure_mid_file_marks_the_job_failed_and_removes_the_partial_file(
    job, monkeypatch, media_root, tmp_path, outsider_with_usage
):
    # The outsider's export of the same month was built a moment earlier: it stays as it was.
    theirs = export_job_run(
        job_id=export_job_create(
            organization=outsider_with_usage,
            type="events",
            format="csv",
            date_from="2026-05-01",
            date_to="2026-05-31",
        ).id
    )
    assert theirs.status == ExportJob.Status.COMPLETED
    their_files = _files(media_root)
    assert len(their_files) == 1
    their_bytes = their_files[0].read_bytes()
    real_rows = events.rows

    def broken(ctx, totals):
        for i, row in enumerate(real_rows(ctx, totals)):
            if i == 3:
                raise RuntimeError("database went away")
            yield row

    monkeypatch.setattr(events, "rows", broken)
    done = export_job_run(job_id=job.id)
    assert done.status == ExportJob.Status.FAILED
    assert done.error == "RuntimeError: database went away"
    assert not done.file
    assert done.manifest == {}
    assert done.finished_at is not None
    assert _files(media_root) == their_files
    assert their_files[0].read_bytes() == their_bytes
    assert their_bytes.count(b"\r\n") == 2  # the header and its one event, none of ours
    theirs.refresh_from_db()
    assert (theirs.status, theirs.error, theirs.manifest["row_count"]) == ("completed", "", 1)


def test_a_completed_job_is_not_built_again(job, outsider_with_usage):
    first = export_job_run(job_id=job.id)
    assert first.manifest["row_count"] == 5  # its own five, not the outsider's May event
    again = export_job_run(job_id=job.id)
    assert again.status == ExportJob.Status.COMPLETED
    assert again.finished_at == first.finished_at
    assert again.file.name == first.file.name


def test_a_job_running_elsewhere_is_left_alone_unless_its_worker_died(job, media_root):
    ExportJob.objects.filter(pk=job.pk).update(status="running", started_at=timezone.now())
    assert export_job_run(job_id=job.id).status == "running"
    assert _files(media_root) == []
    ExportJob.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(hours=2))
    assert export_job_run(job_id=job.id).status == "completed"


def test_an_unknown_job_id_is_ignored():
    assert export_job_run(job_id="job_missing") is None
