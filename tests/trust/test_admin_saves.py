"""The provider-target and consumer-group admins save through the services the config file
uses (chargeback/targets.py, chargeback/services.py): same checks, the service's audit row."""

import httpx
import pytest
from django.contrib.auth import get_user_model

from chargeback.models import AuditLog, ConsumerGroup, ProviderTarget
from chargeback.provider_secrets import provider_secret_set
from tests.factories import ConsumerGroupFactory, DepartmentFactory
from tests.trust.conftest import PASSWORD, AdminBrowser, admin_browser, form_errors

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_target_saved_in_the_admin_goes_through_the_service(live_server, org):
    secret, _ = provider_secret_set(
        organization=org, name="openai-prod", value="sk-0123456789abcdefghij", actor="t", via="api"
    )
    browser = admin_browser(live_server, org)

    response = browser.post(
        "/admin/chargeback/providertarget/add/",
        {
            "organization": org.pk,
            "target_id": "openai",
            "provider": "openai",
            "base_url": "https://api.openai.com/v1",
            "secret": secret.pk,
            "served_models": '["gpt-4o"]',
            "options": "{}",
        },
    )

    assert response.status_code == 302, form_errors(response.text)
    target = ProviderTarget.objects.get(organization=org)
    assert (target.secret, target.base_url) == (secret, "https://api.openai.com/v1")
    row = AuditLog.objects.get(organization=org, action="target.create")
    assert (row.via, row.after["secret"]) == ("admin", "openai-prod")
    assert not AuditLog.objects.filter(action="providertarget.add").exists()


def test_a_consumer_group_saved_in_the_admin_goes_through_the_service(
    live_server, org, outsider_org
):
    group = ConsumerGroupFactory(department=DepartmentFactory(organization=org), name="eng")
    foreign = DepartmentFactory(organization=outsider_org, team_id="team_outsider")
    root = get_user_model().objects.create_superuser(username="root", password=PASSWORD)
    browser = AdminBrowser(httpx.Client(base_url=live_server.url, timeout=30))
    browser.post("/admin/login/?next=/admin/", {"username": root.username, "password": PASSWORD})
    page = f"/admin/chargeback/consumergroup/{group.pk}/change/"
    form = {"is_active": "on", "allowed_models": '["gpt-4o"]', "rpm_limit": "60", "tpm_limit": ""}

    # Even a superuser cannot pay a group's spend from another organization's department.
    refused = browser.post(page, {**form, "department": foreign.pk})
    assert "not a department of this organization" in form_errors(refused.text)["department"]

    saved = browser.post(page, {**form, "department": group.department_id})
    assert saved.status_code == 302, form_errors(saved.text)
    group = ConsumerGroup.objects.get(pk=group.pk)
    assert (group.allowed_models, group.rpm_limit) == (["gpt-4o"], 60)
    row = AuditLog.objects.get(action="consumer_group.update", object_id=str(group.pk))
    assert (row.via, row.actor, row.after["rpm_limit"]) == ("admin", "root", 60)
    assert not AuditLog.objects.filter(action="consumergroup.change").exists()
