"""`export.ready` on the organization's alert channels: once per completed job, with the facts
of the finance e-mail, to organization-wide channels only (a real receiver on loopback)."""

from datetime import UTC, datetime

import pytest

from alert_channels.services.channels import channel_create
from reports.exports.notify import export_job_admin_url
from reports.exports.running import export_job_run
from reports.exports.services import export_job_create
from tests.alert_channels.conftest import receiver, verify_kt_signature  # noqa: F401
from tests.exports.usage import fund, record_usage

pytestmark = pytest.mark.django_db


def test_a_completed_export_is_announced_once_to_organization_channels(
    org,
    engineering,
    model,
    outsider_with_usage,
    receiver,  # noqa: F811
    verify_kt_signature,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    _, secret = channel_create(
        organization=org, name="finance", kind="webhook", url=receiver.url("/org")
    )
    channel_create(
        organization=org,
        name="eng",
        kind="webhook",
        url=receiver.url("/eng"),
        department=engineering,
    )
    channel_create(
        organization=outsider_with_usage, name="theirs", kind="webhook", url=receiver.url("/theirs")
    )
    fund(engineering)
    for day in range(1, 6):
        record_usage(department=engineering, at=datetime(2026, 5, day, tzinfo=UTC), model=model)
    job = export_job_create(
        organization=org, type="events", format="csv", date_from="2026-05-01", date_to="2026-05-31"
    )

    with django_capture_on_commit_callbacks(execute=True):
        done = export_job_run(job_id=job.id)
        export_job_run(job_id=job.id)  # run again: already completed, nothing new

    (request,) = receiver.requests
    assert request.path == "/org"
    assert verify_kt_signature(secret, request.headers["X-KT-Signature"], request.body)
    body = request.json()
    assert body["type"] == "export.ready"
    data = body["data"]
    assert data["job_id"] == done.pk
    assert data["rows"] == 5
    assert data["sha256"] == done.manifest["file"]["sha256"]
    assert data["subject"] == "[AI spend] events export for May 2026"
    assert data["url"] == export_job_admin_url(done)  # the e-mail's link
