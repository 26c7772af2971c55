"""Export jobs in the admin: own organization only, start one, download it."""

from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.test import Client

from chargeback.models import AuditLog, Membership
from reports.exports.notify import export_job_admin_url
from reports.exports.running import export_job_run
from reports.exports.services import export_job_create
from reports.models import ExportJob
from tests.exports.usage import fund, record_usage

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance(org):
    user = User.objects.create_user("fiona", is_staff=True)  # no password: hashing is slow
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_exportjob", "add_exportjob"])
    )
    Membership.objects.create(user=user, organization=org, role=Membership.Role.FINANCE)
    client = Client()
    client.force_login(user)
    return client


def _job(org, **kw):
    return export_job_create(
        organization=org,
        **{
            "type": "events",
            "format": "csv",
            "date_from": "2026-05-01",
            "date_to": "2026-05-31",
            **kw,
        },
    )


def test_staff_see_only_their_organizations_jobs(finance, org, outsider_with_usage):
    mine = export_job_run(job_id=_job(org).id)
    theirs = export_job_run(job_id=_job(outsider_with_usage).id)
    page = finance.get("/admin/reports/exportjob/").content.decode()
    assert mine.id in page
    assert theirs.id not in page
    assert "acme_events_2026-05-01_2026-05-31.csv" in page
    detail = finance.get(f"/admin/reports/exportjob/{quote(mine.id)}/change/")
    assert detail.status_code == 200
    assert mine.manifest["file"]["sha256"] in detail.content.decode()
    their_page = f"/admin/reports/exportjob/{quote(theirs.id)}/change/"
    assert finance.get(their_page).status_code in (302, 404)
    assert finance.get(f"/admin/reports/exportjob/{theirs.id}/download/").status_code == 404


def test_the_emailed_link_opens_a_job_whose_id_reads_like_an_admin_escape(finance, org):
    # Job ids are random hex; the admin reads "_22" in a URL as '"' (about 1 id in 40).
    job = export_job_run(job_id=_job(org).id)
    ExportJob.objects.filter(pk=job.pk).update(id="job_2240aabbccddeeff")
    job = ExportJob.objects.get(pk="job_2240aabbccddeeff")
    page = finance.get(urlsplit(export_job_admin_url(job)).path)
    assert page.status_code == 200
    assert "job_2240aabbccddeeff" in page.content.decode()


def test_the_add_form_starts_a_job_through_the_service(finance, org):
    response = finance.post(
        "/admin/reports/exportjob/add/",
        {
            "type": "chargeback",
            "format": "xlsx",
            "date_from": "2026-05-01",
            "date_to": "2026-05-31",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    job = ExportJob.objects.get()
    assert (job.organization, job.type, job.format) == (org, "chargeback", "xlsx")
    assert job.requested_by == "user:fiona"
    assert AuditLog.objects.filter(action="export.requested", via="admin").exists()


def test_the_add_form_shows_the_services_error_and_creates_nothing(finance):
    response = finance.post(
        "/admin/reports/exportjob/add/",
        {"type": "events", "format": "csv", "date_from": "2026-05-31", "date_to": "2026-05-01"},
    )
    assert response.status_code == 200
    assert "is after date_to" in response.content.decode()
    assert not ExportJob.objects.exists()


def test_the_download_link_serves_the_file_and_is_audited(finance, org, engineering, model):
    fund(engineering)
    record_usage(department=engineering, at=datetime(2026, 5, 5, tzinfo=UTC), model=model)
    queued = _job(org)
    response = finance.get(f"/admin/reports/exportjob/{queued.id}/download/")
    assert response.status_code == 302  # not completed yet: back to the list with a message
    job = export_job_run(job_id=queued.id)
    response = finance.get(f"/admin/reports/exportjob/{job.id}/download/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).count(b"\r\n") == 2
    assert AuditLog.objects.get(action="export.downloaded").via == "admin"


def test_a_superuser_sees_every_organization_and_chooses_one_when_adding(org, outsider_org):
    boss = User.objects.create_superuser("root", email="root@example.com")
    client = Client()
    client.force_login(boss)
    mine, theirs = _job(org), _job(outsider_org)
    page = client.get("/admin/reports/exportjob/").content.decode()
    assert mine.id in page
    assert theirs.id in page
    response = client.post(
        "/admin/reports/exportjob/add/",
        {
            "organization": outsider_org.pk,
            "type": "focus",
            "format": "jsonl",
            "date_from": "2026-05-01",
            "date_to": "2026-05-31",
        },
    )
    assert response.status_code == 302
    assert ExportJob.objects.filter(organization=outsider_org, type="focus").exists()


def test_staff_without_an_organization_are_refused(org):
    user = User.objects.create_user("drifter", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename="view_exportjob"))
    client = Client()
    client.force_login(user)
    assert client.get("/admin/reports/exportjob/").status_code == 403


def test_export_again_queues_a_new_job_with_the_same_settings(finance, org, outsider_with_usage):
    first = _job(org, type="focus", format="jsonl", filters={"provider": "fake"})
    theirs = _job(outsider_with_usage)
    response = finance.post(
        "/admin/reports/exportjob/",
        {"action": "export_again", "_selected_action": [first.id, theirs.id]},
    )
    assert response.status_code == 302
    again = ExportJob.objects.filter(organization=org).exclude(pk=first.pk).get()
    assert (again.type, again.format, again.filters) == ("focus", "jsonl", {"provider": "fake"})
    assert ExportJob.objects.filter(organization=outsider_with_usage).count() == 1
