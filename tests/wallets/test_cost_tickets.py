"""Cost tickets as finance sees them: `GET /v1/cost-tickets`, approve and deny (idempotent, scoped
to the token's organization, audited), and the expiry the hold sweeper applies."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from chargeback.models import AuditLog
from gateway.sweep import holds_sweep
from tests.factories import DepartmentFactory
from wallets import services
from wallets.models import Hold
from wallets.models_tickets import CostTicket
from wallets.tickets.notify import ticket_opened_notify
from wallets.tickets.services import TicketRefused, ticket_open, ticket_redeem

pytestmark = pytest.mark.django_db


def _ticket(department, estimate="1.25", request_id="req_t1"):
    services.wallet_allocate(department=department, amount=Decimal("1"), currency="USD")
    wallet = services.wallet_for_team(department=department)
    return ticket_open(
        wallet=wallet,
        department_id=department.pk,
        consumer_group_id=None,
        user_ref="alice",
        model="gpt-4o",
        estimate=Decimal(estimate),
        request_id=request_id,
    )


def test_the_pending_list_shows_the_organizations_tickets_only(api, engineering, outsider_org):
    mine = _ticket(engineering)
    _ticket(DepartmentFactory(organization=outsider_org, team_id="team_x"), request_id="req_o")

    response = api.get("/v1/cost-tickets", {"status": "pending"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 1
    row = body["results"][0]
    assert row["id"] == mine.ticket_id
    assert (row["status"], row["team_id"], row["user_id"]) == (
        "pending",
        "team_engineering",
        "alice",
    )
    assert (row["estimate"], row["currency"], row["wallet_scope"]) == ("1.25", "USD", "team")
    assert api.get("/v1/cost-tickets", {"status": "approved"}).json()["count"] == 0
    assert api.get("/v1/cost-tickets", {"status": "nope"}).status_code == 400


def test_approval_is_audited_and_idempotent(api, engineering):
    ticket = _ticket(engineering)
    url = f"/v1/cost-tickets/{ticket.ticket_id}/approve"

    first = api.post(url, HTTP_X_KT_CLIENT="kt/1")
    second = api.post(url)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["status"] == second.json()["status"] == "approved"
    audit = AuditLog.objects.get(action="cost_ticket.approve")
    assert (audit.object_id, audit.via) == (str(ticket.pk), "cli")
    assert audit.after["overdraft"] == "1.25000000"
    # Decided: denying it now is a conflict, and changes nothing.
    denied = api.post(f"/v1/cost-tickets/{ticket.ticket_id}/deny")
    assert denied.status_code == 409
    ticket.refresh_from_db()
    assert ticket.status == "approved"


def test_deny(api, engineering):
    ticket = _ticket(engineering)
    response = api.post(f"/v1/cost-tickets/{ticket.ticket_id}/deny")
    assert response.status_code == 200
    assert response.json()["status"] == "denied"
    assert response.json()["decided_by"].startswith("token:")


def test_another_organizations_ticket_is_a_404(outsider_api, engineering):
    ticket = _ticket(engineering)
    assert outsider_api.post(f"/v1/cost-tickets/{ticket.ticket_id}/approve").status_code == 404
    ticket.refresh_from_db()
    assert ticket.status == "pending"


def test_the_sweeper_expires_pending_tickets_after_the_setting(api, engineering, settings):
    settings.KT_COST_TICKET_HOURS = 2
    pending = _ticket(engineering, request_id="req_p")
    approved = _ticket(engineering, request_id="req_a")
    api.post(f"/v1/cost-tickets/{approved.ticket_id}/approve")

    with time_machine.travel(timezone.now() + timedelta(hours=1, minutes=59)):
        holds_sweep()
        assert CostTicket.objects.get(pk=pending.pk).status == "pending"
    with time_machine.travel(timezone.now() + timedelta(hours=2, minutes=1)):
        holds_sweep()
        # Too late to decide it now.
        assert api.post(f"/v1/cost-tickets/{pending.ticket_id}/approve").status_code == 409

    assert CostTicket.objects.get(pk=pending.pk).status == "expired"
    assert CostTicket.objects.get(pk=approved.pk).status == "approved"
    assert AuditLog.objects.filter(action="cost_ticket.expire").count() == 1


def test_deciding_a_ticket_past_its_expiry_closes_it_before_the_sweeper_does(
    api, engineering, settings
):
    settings.KT_COST_TICKET_HOURS = 2
    ticket = _ticket(engineering)

    with time_machine.travel(timezone.now() + timedelta(hours=2, minutes=1)):
        response = api.post(f"/v1/cost-tickets/{ticket.ticket_id}/deny")

    assert response.status_code == 409
    assert "expired" in response.json()["detail"]
    assert CostTicket.objects.get(pk=ticket.pk).status == "expired"
    assert AuditLog.objects.filter(action="cost_ticket.expire").count() == 1


def test_an_approved_ticket_nobody_redeems_expires_after_its_own_setting(
    api, engineering, settings
):
    settings.KT_COST_TICKET_HOURS = 2
    settings.KT_COST_TICKET_APPROVED_HOURS = 5
    start = timezone.now()
    kept = _ticket(engineering, request_id="req_kept")
    late = _ticket(engineering, request_id="req_late")
    with time_machine.travel(start + timedelta(hours=1)):  # approved an hour after opening
        for ticket in (kept, late):
            assert api.post(f"/v1/cost-tickets/{ticket.ticket_id}/approve").status_code == 200
    with time_machine.travel(start + timedelta(hours=5, minutes=59)):
        holds_sweep()  # past the pending expiry, within the approved one: still redeemable
        assert CostTicket.objects.get(pk=late.pk).status == "approved"
        hold = _redeem(engineering, kept, "req_kept_retry")
        assert hold.amount == Decimal("1.25")
    with time_machine.travel(start + timedelta(hours=6, minutes=1)):
        with pytest.raises(TicketRefused, match="expired"):  # before the sweeper got to it
            _redeem(engineering, late, "req_late_retry")
        holds_sweep()

    assert CostTicket.objects.get(pk=late.pk).status == "expired"
    assert CostTicket.objects.get(pk=kept.pk).status == "redeemed"
    audit = AuditLog.objects.get(action="cost_ticket.expire")
    assert (audit.object_id, audit.before) == (str(late.pk), {"status": "approved"})
    assert not Hold.objects.filter(request_id="req_late_retry").exists()


def _redeem(department, ticket, request_id):
    return ticket_redeem(
        organization_id=department.organization_id,
        consumer_group_id=None,
        ticket_id=ticket.ticket_id,
        amount=ticket.estimate,
        request_id=request_id,
        department_id=department.pk,
    )


def test_the_openapi_schema_names_the_endpoints(api):
    schema = api.get("/api/schema/", {"format": "json"}).content.decode()
    for operation in ("cost_tickets_list", "cost_tickets_approve", "cost_tickets_deny"):
        assert operation in schema


def test_a_burst_of_refusals_e_mails_the_owners_once_per_window(engineering, mailoutbox):
    engineering.owner_emails = ["owner@acme.test"]
    engineering.save(update_fields=["owner_emails"])
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        burst = [_ticket(engineering, request_id=f"req_burst_{n}") for n in range(5)]
    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        later = _ticket(engineering, request_id="req_later")

    sent = [ticket_opened_notify(t.pk) for t in [*burst, later]]

    assert sent == [1, 0, 0, 0, 0, 1]
    assert [m.subject.split(":")[0] for m in mailoutbox] == [
        f"Cost ticket {burst[0].ticket_id}",
        f"Cost ticket {later.ticket_id}",
    ]
