"""Usage events, ledger entries and the audit log cannot be added, edited or deleted through
the admin, by anyone, superusers included."""

import pytest
from django.urls import reverse

from chargeback.admin_base import snapshot
from chargeback.models import AuditLog
from gateway.models import UsageEvent
from wallets.models import LedgerEntry

APPEND_ONLY = [UsageEvent, LedgerEntry, AuditLog]


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", APPEND_ONLY, ids=lambda m: m._meta.label_lower)
@pytest.mark.parametrize("who", ["superuser", "finance"])
def test_it_refuses_to_add_change_or_delete_append_only_rows(
    model, who, acme, outsider, superuser, login
):
    client = login(superuser if who == "superuser" else acme.users["finance"])
    row = model.objects.filter(organization=acme.org).first()
    before = snapshot(row)
    count = model.objects.count()

    assert client.get(_url(model, "add")).status_code == 403
    assert client.post(_url(model, "add"), {"request_id": "x"}).status_code == 403
    assert client.post(_url(model, "change", row.pk), {"cost": "0"}).status_code == 403
    assert client.post(_url(model, "delete", row.pk), {"post": "yes"}).status_code == 403
    # Bulk delete is not even offered (a usage event's only action is a refund: a new entry).
    response = client.get(_url(model, "changelist"))
    assert response.status_code == 200
    form = response.context["action_form"]
    offered = {name for name, _ in form.fields["action"].choices} if form else set()
    assert offered <= {"", "refund"}
    response = client.post(
        _url(model, "changelist"),
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes", "index": 0},
    )
    assert model.objects.count() == count
    assert snapshot(model.objects.get(pk=row.pk)) == before


def test_the_change_view_of_an_event_is_view_only(acme, outsider, superuser, login):
    client = login(superuser)
    event = UsageEvent.objects.filter(organization=acme.org).first()
    response = client.get(_url(UsageEvent, "change", event.pk))
    assert response.status_code == 200
    assert b'name="_save"' not in response.content
    assert event.request_id.encode() in response.content
