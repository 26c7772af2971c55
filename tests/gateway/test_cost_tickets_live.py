"""Cost tickets through the gateway, with the real OpenAI SDK against the live server: a request
no wallet covers is answered 402 naming a pending ticket; finance approves it; the retry with
`X-KT-Ticket` goes through once, its hold past zero by at most the ticket's estimate; a denied,
pending, redeemed or foreign ticket is refused; the budget owners hear of the ticket."""

import openai
import pytest
from django.core import mail

from chargeback.models import AuditLog
from gateway.models import UsageEvent
from wallets import services
from wallets.models import Hold, Wallet
from wallets.models_tickets import CostTicket
from wallets.tickets.services import ticket_approve, ticket_deny

from .conftest import OUTSIDER_KEY, live_db

pytestmark = live_db

HELLO = [{"role": "user", "content": "Hello there, what is chargeback?"}]


def _broke(gw):
    """Nothing anywhere in the chain: the team's funds back to the organization, then out."""
    services.wallet_reclaim(department=gw.department)
    organization = Wallet.objects.get(organization=gw.org, scope="organization")
    services.wallet_adjust(wallet=organization, amount=-organization.balance, reason="empty")
    organization.refresh_from_db()
    assert organization.available == 0
    return organization


def _refused(oai, **extra):
    with pytest.raises(openai.APIStatusError) as exc:
        oai.chat.completions.create(model="fake-chat", messages=HELLO, max_tokens=50, **extra)
    return exc.value


def test_a_request_no_wallet_covers_opens_a_ticket_named_in_its_402(gw, oai):
    gw.department.owner_emails = ["owner@acme.test"]
    gw.department.save()
    organization = _broke(gw)

    error = _refused(oai, user="alice")

    ticket = CostTicket.objects.get()
    assert error.status_code == 402
    assert error.body["code"] == "insufficient_quota"
    assert error.body["ticket_id"] == ticket.ticket_id
    assert ticket.ticket_id in error.body["message"]
    assert error.response.headers["x-kt-ticket"] == ticket.ticket_id
    assert ticket.ticket_id.startswith("tkt_")
    assert ticket.status == "pending"
    assert (ticket.organization, ticket.department, ticket.consumer_group) == (
        gw.org,
        gw.department,
        gw.group,
    )
    assert (ticket.user_ref, ticket.model, ticket.wallet) == ("alice", "fake-chat", organization)
    assert ticket.estimate > 0
    assert ticket.request_id == error.response.headers["x-kt-request-id"]
    assert UsageEvent.objects.get().status == "rejected"
    # The department's owner hears of it (the task runs in-process in tests).
    # (the refusal also has the wallet checked: its "depleted" alert is another e-mail)
    (notice,) = [m for m in mail.outbox if m.subject.startswith("Cost ticket")]
    assert notice.to == ["owner@acme.test"]
    assert ticket.ticket_id in notice.body


def test_an_approved_ticket_lets_the_retry_through_once_as_an_overdraft(gw, oai):
    organization = _broke(gw)
    ticket_id = _refused(oai).body["ticket_id"]
    ticket = ticket_approve(organization=gw.org, ticket_id=ticket_id, actor="finance", via="api")
    again = ticket_approve(organization=gw.org, ticket_id=ticket_id, actor="finance", via="api")
    assert (ticket.status, again.status) == ("approved", "approved")
    assert AuditLog.objects.filter(action="cost_ticket.approve").count() == 1  # idempotent

    retry = oai.chat.completions.with_raw_response.create(
        model="fake-chat",
        messages=HELLO,
        max_tokens=50,
        extra_headers={"X-KT-Ticket": ticket_id},
    )
    retry.parse()

    ticket.refresh_from_db()
    request_id = retry.headers["x-kt-request-id"]
    hold = Hold.objects.get(request_id=request_id)
    event = UsageEvent.objects.get(request_id=request_id)
    organization.refresh_from_db()
    assert (ticket.status, ticket.redeemed_request_id) == ("redeemed", request_id)
    assert (hold.wallet_id, hold.status) == (organization.pk, "captured")
    assert hold.amount <= ticket.estimate
    assert event.status == "ok"
    assert event.wallet_id == organization.pk
    # The overdraft: the organization wallet went below zero by the call's cost, no more.
    assert organization.balance == -event.cost
    assert -organization.balance <= ticket.estimate
    assert AuditLog.objects.filter(action="cost_ticket.redeem").count() == 1

    # Redeemed once: the same ticket again is refused, nothing charged.
    second = _refused(oai, extra_headers={"X-KT-Ticket": ticket_id})
    assert second.status_code == 409
    assert second.body["code"] == "cost_ticket_refused"
    organization.refresh_from_db()
    assert organization.balance == -event.cost


@pytest.mark.parametrize("decision", ["pending", "denied"])
def test_a_ticket_not_approved_is_refused(gw, oai, decision):
    _broke(gw)
    ticket_id = _refused(oai).body["ticket_id"]
    if decision == "denied":
        ticket_deny(organization=gw.org, ticket_id=ticket_id, actor="finance", via="api")

    error = _refused(oai, extra_headers={"X-KT-Ticket": ticket_id})

    assert error.status_code == 409
    assert decision in error.body["message"]
    assert not Hold.objects.exists()


def test_another_organizations_ticket_is_refused(gw, oai, live_server):
    _broke(gw)
    ticket_id = _refused(oai).body["ticket_id"]
    ticket_approve(organization=gw.org, ticket_id=ticket_id, actor="finance", via="api")
    outsider = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=OUTSIDER_KEY, max_retries=0, timeout=20
    )

    with pytest.raises(openai.NotFoundError) as exc:
        outsider.chat.completions.create(
            model="outsider-only",
            messages=HELLO,
            max_tokens=50,
            extra_headers={"X-KT-Ticket": ticket_id},
        )

    assert exc.value.body["code"] == "cost_ticket_not_found"
    assert CostTicket.objects.get().status == "approved"  # still the owner's to redeem
    gw.outsider_wallet.refresh_from_db()
    assert gw.outsider_wallet.held == 0


def test_a_retry_dearer_than_the_ticket_is_refused(gw, oai):
    _broke(gw)
    ticket_id = _refused(oai).body["ticket_id"]
    ticket_approve(organization=gw.org, ticket_id=ticket_id, actor="finance", via="api")

    with pytest.raises(openai.APIStatusError) as exc:
        oai.chat.completions.create(
            model="fake-chat",
            messages=HELLO,
            max_tokens=900,
            extra_headers={"X-KT-Ticket": ticket_id},
        )

    assert exc.value.status_code == 409
    assert "exceeds" in exc.value.body["message"]
    assert CostTicket.objects.get().status == "approved"
    assert not Hold.objects.exists()
