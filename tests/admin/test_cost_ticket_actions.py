"""Cost tickets in the admin: the changelist opens on the pending queue; finance approves or
denies in bulk through the service (its audit rows, via admin); a viewer has no such actions."""

from django.urls import reverse

from chargeback.models import AuditLog
from wallets.models_tickets import CostTicket

TICKETS = reverse("admin:wallets_costticket_changelist")


def test_finance_approves_and_denies_pending_tickets_in_bulk(acme, login):
    client = login(acme.users["finance"])
    tickets = list(CostTicket.objects.filter(organization=acme.org).order_by("pk"))

    page = client.get(TICKETS)
    assert page.status_code == 200
    assert {t.pk for t in page.context["cl"].result_list} == {t.pk for t in tickets}

    ids = [str(t.pk) for t in tickets]
    approved = client.post(TICKETS, {"action": "approve", "_selected_action": ids[:1]})
    assert approved.status_code == 302
    # Approving again changes nothing; denying an approved ticket is refused, per ticket.
    client.post(TICKETS, {"action": "approve", "_selected_action": ids[:1]})
    client.post(TICKETS, {"action": "deny", "_selected_action": ids})

    statuses = dict(CostTicket.objects.filter(organization=acme.org).values_list("pk", "status"))
    assert statuses == {tickets[0].pk: "approved", tickets[1].pk: "denied"}
    audit = AuditLog.objects.filter(organization=acme.org, via="admin")
    assert audit.filter(action="cost_ticket.approve").get().actor == "acme_finance"
    assert audit.filter(action="cost_ticket.deny").count() == 1
    # The queue is empty now; every ticket is under "All".
    assert not client.get(TICKETS).context["cl"].result_list
    assert len(client.get(TICKETS, {"status": "all"}).context["cl"].result_list) == 2


def test_a_viewer_cannot_decide(acme, login):
    client = login(acme.users["viewer"])
    page = client.get(TICKETS)
    assert page.status_code == 200
    form = page.context.get("action_form")
    offered = [name for name, _ in form.fields["action"].choices if name] if form else []
    assert "approve" not in offered
    assert "deny" not in offered
    ticket = CostTicket.objects.filter(organization=acme.org).first()
    client.post(TICKETS, {"action": "approve", "_selected_action": [str(ticket.pk)]})
    ticket.refresh_from_db()
    assert ticket.status == "pending"
