"""`cost_tickets: {mode: wait}`: a request no wallet covers is held open (its ticket pending) and
continues as soon as the ticket is approved or funds arrive; a denial, an expiry or the end of
`wait_seconds` answers 402 with the ticket. The real OpenAI SDK against the live server,
finance acting from another thread meanwhile."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import openai
import pytest
from django.db import connection

from gateway.models import UsageEvent
from gateway.sweep import holds_sweep
from wallets import services
from wallets.models import Hold, LedgerEntry, Wallet
from wallets.models_tickets import CostTicket
from wallets.tickets.policy import ticket_policy_set
from wallets.tickets.services import ticket_approve, ticket_deny

from .conftest import live_db

pytestmark = live_db

HELLO = [{"role": "user", "content": "Hello there, what is chargeback?"}]


def _broke_and_waiting(gw, seconds=10):
    services.wallet_reclaim(department=gw.department)
    organization = Wallet.objects.get(organization=gw.org, scope="organization")
    services.wallet_adjust(wallet=organization, amount=-organization.balance, reason="empty")
    ticket_policy_set(
        organization=gw.org, mode="wait", wait_seconds=seconds, actor="test", via="api"
    )
    return organization


def _later(action, *, when=lambda: CostTicket.objects.filter(status="pending").first()):
    """Run `action(ticket)` from another thread once a pending ticket exists."""

    def run():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ticket = when()
            if ticket is not None:
                time.sleep(0.2)  # the request is waiting by now
                action(ticket)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _create(oai, **extra):
    return oai.chat.completions.with_raw_response.create(
        model="fake-chat", messages=HELLO, max_tokens=50, **extra
    )


def test_approval_while_the_request_waits_lets_it_through_charged_once(gw, oai):
    organization = _broke_and_waiting(gw)
    finance = _later(
        lambda t: ticket_approve(organization=gw.org, ticket_id=t.ticket_id, actor="f", via="api")
    )

    raw = _create(oai)
    reply = raw.parse()
    finance.join()

    assert reply.choices[0].message.content
    ticket = CostTicket.objects.get()
    request_id = raw.headers["x-kt-request-id"]
    assert (ticket.status, ticket.redeemed_request_id) == ("redeemed", request_id)
    assert ticket.request_id == request_id  # the waiting request redeemed its own ticket
    event = UsageEvent.objects.get()  # one event: no `rejected` one before it
    assert (event.status, event.wallet_id) == ("ok", organization.pk)
    captures = LedgerEntry.objects.filter(kind="capture", reference=request_id)
    assert captures.count() == 1
    organization.refresh_from_db()
    assert organization.balance == -event.cost
    assert Hold.objects.get().status == "captured"


def test_funds_arriving_while_it_waits_let_it_through_and_close_the_ticket(gw, oai):
    _broke_and_waiting(gw)
    topup = _later(
        lambda t: services.wallet_allocate(
            department=gw.department, amount=Decimal("5"), currency="USD"
        )
    )

    raw = _create(oai, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    topup.join()

    assert text
    assert CostTicket.objects.get().status == "cancelled"
    event = UsageEvent.objects.get()
    assert (event.status, event.wallet_id) == ("ok", gw.wallet.pk)  # the team wallet paid
    assert gw.refresh().balance == Decimal("5") - event.cost


def test_a_denial_while_it_waits_answers_402_with_the_ticket(gw, oai):
    _broke_and_waiting(gw)
    finance = _later(
        lambda t: ticket_deny(organization=gw.org, ticket_id=t.ticket_id, actor="f", via="api")
    )
    started = time.monotonic()

    with pytest.raises(openai.APIStatusError) as exc:
        _create(oai)
    finance.join()

    assert exc.value.status_code == 402
    assert exc.value.body["ticket_id"] == CostTicket.objects.get().ticket_id
    assert CostTicket.objects.get().status == "denied"
    assert time.monotonic() - started < 5  # not the whole wait
    assert UsageEvent.objects.get().status == "rejected"
    assert not Hold.objects.exists()


def test_an_expiry_while_it_waits_answers_402(gw, oai, settings):
    settings.KT_COST_TICKET_HOURS = 1 / 3600  # one second
    _broke_and_waiting(gw)

    def sweep(_ticket):
        time.sleep(1)
        holds_sweep()

    sweeper = _later(sweep)
    with pytest.raises(openai.APIStatusError) as exc:
        _create(oai)
    sweeper.join()

    assert exc.value.status_code == 402
    assert CostTicket.objects.get().status == "expired"


def test_after_wait_seconds_it_answers_402_and_the_ticket_stays_pending(gw, oai):
    _broke_and_waiting(gw, seconds=1)
    started = time.monotonic()

    with pytest.raises(openai.APIStatusError) as exc:
        _create(oai)

    assert time.monotonic() - started >= 1
    assert exc.value.status_code == 402
    assert exc.value.response.headers["x-kt-ticket"] == CostTicket.objects.get().ticket_id
    assert CostTicket.objects.get().status == "pending"  # finance may still approve; retry


def test_a_small_top_up_lets_through_exactly_as_many_waiting_requests_as_it_covers(gw, oai):
    _broke_and_waiting(gw, seconds=8)
    waiting = 100

    def call(_):
        try:
            _create(oai)
        except openai.APIStatusError as exc:
            return exc.status_code  # 402 expected: checked below
        return True

    with ThreadPoolExecutor(waiting) as pool:
        results = pool.map(call, range(waiting))
        deadline = time.monotonic() + 15
        while CostTicket.objects.count() < waiting and time.monotonic() < deadline:
            time.sleep(0.1)
        estimate = CostTicket.objects.first().estimate
        # Room for 3 worst cases, and a bit: the captures then free what was not spent.
        services.wallet_allocate(department=gw.department, amount=estimate * 3, currency="USD")
        outcomes = list(results)
        proceeded = outcomes.count(True)

    wallet = gw.refresh()
    charged = UsageEvent.objects.filter(status="ok")
    assert proceeded == charged.count() >= 3
    assert proceeded < waiting
    assert set(outcomes) == {True, 402}
    # Never overspent, and nobody left out that the wallet could still have covered.
    assert wallet.balance >= 0
    assert wallet.held == 0
    assert wallet.balance < estimate
    assert wallet.balance == estimate * 3 - sum(e.cost for e in charged)
    assert CostTicket.objects.filter(status="cancelled").count() == proceeded


def test_a_client_that_goes_away_while_waiting_cancels_its_ticket(gw, oai, live_server):
    _broke_and_waiting(gw, seconds=20)
    impatient = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=oai.api_key, max_retries=0, timeout=1
    )

    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="fake-chat", messages=HELLO, max_tokens=50)

    deadline = time.monotonic() + 10
    while CostTicket.objects.get().status == "pending" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert CostTicket.objects.get().status == "cancelled"
    assert not Hold.objects.exists()
    _until_the_server_is_idle()  # its request thread still finishes; the teardown truncates


def _until_the_server_is_idle(seconds: float = 10) -> None:
    """No other session of the test database busy (a live server's request finishing after
    the state a test waited for deadlocks with the teardown's TRUNCATE)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.05)
