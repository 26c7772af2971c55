"""The organization's choice for rate limits without their store, in the admin."""

import json

from django.urls import reverse

from chargeback.models import AuditLog, Organization


def _change_form_data(response) -> dict:
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        data[name] = json.dumps(value) if isinstance(value, list) else value
    return data


def test_an_owner_sees_and_sets_it_and_the_change_is_audited(acme, login):
    client = login(acme.users["owner"])
    changelist = client.get(reverse("admin:chargeback_organization_changelist"))
    assert "Rate limits unavailable" in changelist.content.decode()

    url = reverse("admin:chargeback_organization_change", args=[acme.org.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert "serve it without limits" in page.content.decode()
    data = _change_form_data(page) | {"rate_limits_unavailable": "closed"}
    response = client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Organization.objects.get(pk=acme.org.pk).rate_limits_unavailable == "closed"
    row = AuditLog.objects.filter(organization=acme.org, via="admin").latest("id")
    assert (row.actor, row.via) == ("acme_owner", "admin")
    assert row.after["rate_limits_unavailable"] == "closed"


def test_another_organizations_record_is_a_404(acme, outsider, login):
    client = login(acme.users["owner"])
    url = reverse("admin:chargeback_organization_change", args=[outsider.org.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"rate_limits_unavailable": "closed"}).status_code == 404
    assert Organization.objects.get(pk=outsider.org.pk).rate_limits_unavailable == "open"
