"""The export-jobs API: create, list, get, manifest, download; bad input; other tenants."""

from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from chargeback.models import AuditLog
from reports.exports.running import export_job_run
from reports.models import ExportJob
from tests.conftest import bearer_client
from tests.exports.usage import fund, record_usage

pytestmark = pytest.mark.django_db

MAY = {"type": "events", "format": "csv", "date_from": "2026-05-01", "date_to": "2026-05-31"}


@pytest.fixture
def outsider_api(outsider_with_usage):
    return bearer_client("kt_admin_outsider_exports")


@pytest.fixture
def usage(org, engineering, model):
    fund(engineering)
    for day in (1, 31):
        record_usage(department=engineering, at=datetime(2026, 5, day, 12, tzinfo=UTC), model=model)


def test_it_creates_a_queued_job_and_records_who_asked(api, org):
    response = api.post("/v1/export-jobs", MAY, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"].startswith("job_")
    assert body["status"] == "queued"
    assert body["download_url"] == ""
    job = ExportJob.objects.get(pk=body["id"])
    assert job.organization == org
    assert job.requested_by.startswith("token:")
    audit = AuditLog.objects.get(action="export.requested", object_id=job.id)
    assert audit.after["date_from"] == "2026-05-01"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**MAY, "date_from": "2026-06-01"}, "date_to", "date_from 2026-06-01 is after date_to"),
        ({**MAY, "type": "invoices"}, "type", "unknown type 'invoices'"),
        ({**MAY, "format": "pdf"}, "format", "unknown format 'pdf'"),
        ({**MAY, "date_from": "2024-01-01"}, "date_to", "at most 366 per export"),
        ({**MAY, "filters": {"colour": "red"}}, "filters", "unknown filter colour"),
        ({**MAY, "filters": {"team_id": "team_nope"}}, "filters", "no department"),
    ],
)
def test_it_refuses_bad_input_with_a_clear_error_and_creates_nothing(api, body, field, message):
    response = api.post("/v1/export-jobs", body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert message in response.json()["detail"]
    assert not ExportJob.objects.exists()
    assert not AuditLog.objects.filter(action="export.requested").exists()


@pytest.mark.parametrize("value", ["2026-13-01", "31/05/2026", "", "yesterday"])
def test_it_refuses_malformed_dates_as_a_drf_field_error(api, value):
    response = api.post("/v1/export-jobs", {**MAY, "date_to": value}, format="json")
    assert response.status_code == 400
    assert "date_to" in response.json()
    assert not ExportJob.objects.exists()


def test_it_needs_an_admin_token():
    response = APIClient().post("/v1/export-jobs", MAY, format="json")
    assert response.status_code in (401, 403)


def test_download_is_409_until_completed_then_streams_the_file(api, org, usage):
    job_id = api.post("/v1/export-jobs", MAY, format="json").json()["id"]
    response = api.get(f"/v1/export-jobs/{job_id}/download")
    assert response.status_code == 409
    assert "queued" in response.json()["detail"]

    export_job_run(job_id=job_id)
    body = api.get(f"/v1/export-jobs/{job_id}").json()
    assert body["status"] == "completed"
    assert body["rows_written"] == body["rows_expected"] == 2
    assert body["progress"] == 100.0
    assert body["download_url"] == f"/v1/export-jobs/{job_id}/download"

    response = api.get(body["download_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="acme_events_2026-05-01_2026-05-31.csv"' in response["Content-Disposition"]
    content = b"".join(response.streaming_content)
    assert content.count(b"\r\n") == 3
    assert response["X-Content-SHA256"] == body["sha256"]
    assert AuditLog.objects.filter(action="export.downloaded", object_id=job_id).count() == 1

    manifest = api.get(f"/v1/export-jobs/{job_id}/manifest").json()
    assert manifest["row_count"] == 2
    assert manifest["generator"] == "ai-chargeback-exports"
    assert manifest["file"]["sha256"] == body["sha256"]


def test_list_shows_only_this_organizations_jobs(api, outsider_api, org):
    mine = api.post("/v1/export-jobs", MAY, format="json").json()["id"]
    theirs = outsider_api.post("/v1/export-jobs", MAY, format="json").json()["id"]
    listed = api.get("/v1/export-jobs").json()
    assert [j["id"] for j in listed["results"]] == [mine]
    assert listed["count"] == 1
    assert theirs not in str(api.get("/v1/export-jobs?status=queued").json())


@pytest.mark.parametrize("suffix", ["", "/download", "/manifest"])
def test_another_organizations_job_is_404(api, outsider_api, suffix):
    theirs = outsider_api.post("/v1/export-jobs", MAY, format="json").json()["id"]
    export_job_run(job_id=theirs)
    response = api.get(f"/v1/export-jobs/{theirs}{suffix}")
    assert response.status_code == 404
    assert not AuditLog.objects.filter(action="export.downloaded").exists()


def test_the_outsiders_events_never_reach_this_organizations_file(api, outsider_api, usage):
    job_id = api.post("/v1/export-jobs", MAY, format="json").json()["id"]
    job = export_job_run(job_id=job_id)
    assert job.rows_written == 2
    assert job.manifest["organization"] == "acme"
