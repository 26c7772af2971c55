"""The installed `kt cost-tickets list|approve|deny` against a real server."""

import json
from decimal import Decimal

import pytest

from tests.factories import DepartmentFactory
from wallets import services
from wallets.models_tickets import CostTicket
from wallets.tickets.services import ticket_open

from .test_cli import kt, one_line

pytestmark = pytest.mark.django_db(transaction=True)


def _ticket(department, request_id):
    services.wallet_allocate(department=department, amount=Decimal("1"), currency="USD")
    return ticket_open(
        wallet=services.wallet_for_team(department=department),
        department_id=department.pk,
        consumer_group_id=None,
        user_ref="alice",
        model="gpt-4o",
        estimate=Decimal("1234.5"),
        request_id=request_id,
    )


def test_list_approve_and_deny(live_server, admin_token, engineering, outsider_org):
    url = live_server.url
    first, second = _ticket(engineering, "req_1"), _ticket(engineering, "req_2")
    theirs = _ticket(DepartmentFactory(organization=outsider_org, team_id="team_o"), "req_o")

    listed = kt("cost-tickets", "list", url=url)
    assert listed.returncode == 0, listed.stderr
    assert first.ticket_id in listed.stdout
    assert second.ticket_id in listed.stdout
    assert theirs.ticket_id not in listed.stdout
    assert "1,234.50" in listed.stdout

    approved = kt("cost-tickets", "approve", first.ticket_id, url=url)
    assert approved.returncode == 0, approved.stderr
    assert f"{first.ticket_id}: approved (1,234.50 USD, team_engineering)" in approved.stdout
    denied = kt("cost-tickets", "deny", second.ticket_id, "--json", url=url)
    assert json.loads(denied.stdout)[0]["status"] == "denied"

    pending = json.loads(kt("cost-tickets", "list", "--json", url=url).stdout)
    assert pending["count"] == 0
    every = json.loads(kt("cost-tickets", "list", "--status", "all", "--json", url=url).stdout)
    assert {t["status"] for t in every["results"]} == {"approved", "denied"}

    # Another organization's ticket: one line, non-zero, nothing changed.
    refused = kt("cost-tickets", "approve", theirs.ticket_id, url=url)
    assert "no cost ticket" in one_line(refused)
    assert CostTicket.objects.get(pk=theirs.pk).status == "pending"
    # A decided ticket cannot be decided otherwise.
    assert "not pending" in one_line(kt("cost-tickets", "deny", first.ticket_id, url=url))
