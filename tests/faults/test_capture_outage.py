"""PostgreSQL goes away between the provider's answer and the capture (issue 12, part 3): every
answered call is still charged exactly once, the client still gets its reply, and a call that
needed the database before the provider gets a 503 with `retry-after` instead."""

import json
import threading
import time
from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum
from django.utils import timezone

from gateway.models import UsageEvent
from gateway.sweep import holds_sweep
from tests.gateway.conftest import KEY, OUTSIDER_KEY
from wallets.models import Hold, LedgerEntry, Wallet
from wallets.services.holds import LATE_CAPTURE

from .conftest import live_db, wait_for

pytestmark = live_db

HELLO = [{"role": "user", "content": "Summarise the month's spend"}]


def call(url: str, n, *, api="openai", stream=False, latency=0, key=KEY) -> dict:
    """One call with httpx; what the client saw."""
    headers = {
        "Authorization": f"Bearer {key}",
        "x-fake-call": str(n),
        "x-fake-latency": str(latency),
    }
    body = {"model": "fake-chat", "messages": HELLO, "max_tokens": 16, "stream": stream}
    path = "/v1/chat/completions"
    if api == "anthropic":
        path, headers["anthropic-version"] = "/v1/messages", "2023-06-01"
    with httpx.stream("POST", url + path, json=body, headers=headers, timeout=60) as r:
        text = r.read().decode()
        return {
            "status": r.status_code,
            "headers": dict(r.headers),
            "text": text,
            "complete": not stream
            or ("[DONE]" in text if api == "openai" else "message_stop" in text),
        }


def in_thread(fn, *args, **kwargs):
    """Run fn in a thread; returns a callable that joins it and gives its result."""
    box = {}

    def run():
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()

    def result(timeout=60):
        thread.join(timeout)
        assert not thread.is_alive(), "the call did not return"
        if "error" in box:
            raise box["error"]
        return box["result"]

    return result


def pending(n: int):
    return lambda: Hold.objects.filter(status="pending").count() == n


def assert_charged_once(request_id: str) -> UsageEvent:
    """The answered call's one event has its cost, and exactly that was captured, once."""
    event = UsageEvent.objects.get(request_id=request_id)
    assert (event.status, event.usage_source) == ("ok", "provider")
    assert event.cost > 0
    captures = LedgerEntry.objects.filter(kind="capture", reference=request_id)
    assert [c.amount for c in captures] == [-event.cost]
    hold = Hold.objects.get(request_id=request_id)
    assert (hold.status, hold.captured_amount) == ("captured", event.cost)
    return event


def assert_books_balance(tenants):
    for wallet in Wallet.objects.all():
        ledger = LedgerEntry.objects.filter(wallet=wallet).aggregate(s=Sum("amount"))["s"]
        held = Hold.objects.filter(wallet=wallet, status="pending").aggregate(s=Sum("amount"))
        assert wallet.balance == ledger
        assert wallet.held == (held["s"] or 0)
    assert not Hold.objects.filter(status="pending").exists()
    assert not UsageEvent.objects.filter(status="expired").exists()
    # The other organization was never touched.
    tenants.outsider_wallet.refresh_from_db()
    assert (tenants.outsider_wallet.balance, tenants.outsider_wallet.held) == (Decimal("5"), 0)
    assert not UsageEvent.objects.filter(organization=tenants.outsider_org).exists()


def test_every_call_answered_while_the_database_is_cut_is_charged_exactly_once(
    tenants, gateway, pg_proxy, provider, outbox_dir
):
    gw = gateway()
    assert call(gw.url, "warm")["status"] == 200
    shapes = [(api, stream) for api in ("openai", "anthropic") for stream in (False, True)]
    # Answers land 0.6-2.4 s after the requests, all inside the 3 s cut.
    calls = [
        in_thread(call, gw.url, i, api=api, stream=stream, latency=600 + 250 * i)
        for i, (api, stream) in enumerate(shapes * 2)
    ]
    wait_for(pending(len(calls)), what="every call's hold")
    pg_proxy.cut()
    time.sleep(3)  # the outage itself
    pg_proxy.restore()
    replies = [result() for result in calls]

    assert [(r["status"], r["complete"]) for r in replies] == [(200, True)] * len(calls)
    assert provider.answered >= {str(i) for i in range(len(calls))}
    wait_for(lambda: not Hold.objects.filter(status="pending").exists(), what="the replays")
    wait_for(lambda: not any(outbox_dir.glob("*.json")), what="an empty outbox")
    costs = [assert_charged_once(r["headers"]["x-kt-request-id"]).cost for r in replies]
    warm = UsageEvent.objects.exclude(
        request_id__in=[r["headers"]["x-kt-request-id"] for r in replies]
    )
    assert warm.count() == 1
    tenants.refresh()
    assert tenants.wallet.balance == Decimal("10") - sum(costs) - warm.get().cost
    assert_books_balance(tenants)


def test_captures_queued_on_one_wallet_during_a_long_outage_are_not_held_one_pool_wait_each(
    tenants, gateway, pg_proxy, outbox_dir
):
    # Group commit queues concurrent captures of a wallet behind each other; with the database
    # away, a batch once ran its captures again one by one, each waiting for the pool in turn.
    gw = gateway(DB_POOL_TIMEOUT="1", KT_CAPTURE_RETRY_SECONDS="0.5")
    assert call(gw.url, "warm")["status"] == 200
    timed = lambda n: (call(gw.url, n, latency=1000), time.monotonic())  # noqa: E731
    calls = [in_thread(timed, i) for i in range(10)]
    wait_for(pending(10), what="every call's hold")
    pg_proxy.cut()
    cut_at = time.monotonic()
    replies = [result() for result in calls]  # all of them while the database is still away
    restored_at = time.monotonic()
    pg_proxy.restore()

    assert [reply["status"] for reply, _ in replies] == [200] * 10
    # Answered about 1 s after the cut; then at most two pool waits (1 s each), a 0.5 s retry
    # and a file write. One by one, the last would have waited ten pool waits more.
    assert max(at for _, at in replies) - cut_at < 5
    assert restored_at - cut_at < 5
    wait_for(lambda: not any(outbox_dir.glob("*.json")), what="the replays")
    for reply, _ in replies:
        assert_charged_once(reply["headers"]["x-kt-request-id"])
    assert_books_balance(tenants)


def test_a_capture_in_the_outbox_is_replayed_by_the_next_worker_after_a_kill_9(
    tenants, gateway, pg_proxy, outbox_dir
):
    gw = gateway(KT_CAPTURE_RETRY_SECONDS="0.5")
    assert call(gw.url, "warm")["status"] == 200
    reply = in_thread(call, gw.url, 1, latency=1500)
    wait_for(pending(1), what="the hold")
    pg_proxy.cut()
    reply = reply()  # the capture could not commit: the reply waited for the outbox write
    request_id = reply["headers"]["x-kt-request-id"]
    assert reply["status"] == 200
    assert "x-kt-wallet-available" not in reply["headers"]  # not known: not committed yet
    assert [p.name for p in outbox_dir.glob("*.json")] == [f"{request_id}.json"]
    record = json.loads((outbox_dir / f"{request_id}.json").read_text())
    assert record["amount"] == reply["headers"]["x-kt-cost"]

    killed = gw.kill_workers()  # before any replay: the database is still cut
    assert Hold.objects.get(request_id=request_id).status == "pending"
    pg_proxy.restore()

    wait_for(lambda: set(gw.workers()) - set(killed), what="a new worker")
    wait_for(lambda: not any(outbox_dir.glob("*.json")), what="the replay")
    event = assert_charged_once(request_id)
    assert str(event.cost) == reply["headers"]["x-kt-cost"]
    assert "capture replayed from the outbox (captured" in gw.log()
    assert_books_balance(tenants)


def test_a_capture_whose_commit_outcome_was_lost_is_not_charged_twice(
    tenants, gateway, pg_proxy, outbox_dir
):
    gw = gateway()
    assert call(gw.url, "warm")["status"] == 200
    reply = in_thread(call, gw.url, 1, latency=1500)
    wait_for(pending(1), what="the hold")
    hold = Hold.objects.get(status="pending")
    # The capture reaches PostgreSQL and commits; its answer never comes back.
    pg_proxy.swallow()
    wait_for(lambda: Hold.objects.get(pk=hold.pk).status == "captured", what="the capture's commit")
    pg_proxy.cut()  # the gateway's connection breaks: it cannot know the capture committed
    time.sleep(0.3)
    pg_proxy.restore()  # its retry (or, had that run out, the replay) finds the capture done
    reply = reply()

    assert reply["status"] == 200
    wait_for(lambda: not any(outbox_dir.glob("*.json")), what="an empty outbox")
    event = assert_charged_once(hold.request_id)
    assert reply["headers"]["x-kt-cost"] == str(event.cost)
    assert UsageEvent.objects.count() == 2  # the warm-up call and this one
    assert_books_balance(tenants)


def test_a_capture_replayed_after_the_sweeper_expired_its_hold_charges_it_once(
    tenants, gateway, pg_proxy, outbox_dir
):
    gw = gateway(KT_HOLD_TTL_SECONDS="3", KT_CAPTURE_RETRY_SECONDS="0.5")
    assert call(gw.url, "warm")["status"] == 200
    reply = in_thread(call, gw.url, 1, api="anthropic", stream=True, latency=1500)
    wait_for(pending(1), what="the hold")
    pg_proxy.cut()
    reply = reply()
    assert (reply["status"], reply["complete"]) == (200, True)
    request_id = reply["headers"]["x-kt-request-id"]
    assert (outbox_dir / f"{request_id}.json").exists()

    # The outage outlasts the hold's TTL: the sweeper (which reaches the database) runs first.
    hold = Hold.objects.get(request_id=request_id)
    time.sleep(max(0.0, (hold.expires_at - timezone.now()).total_seconds()) + 0.1)
    assert holds_sweep() == 1
    placeholder = UsageEvent.objects.get(request_id=request_id)
    assert (placeholder.status, placeholder.cost) == ("expired", 0)
    tenants.refresh()
    assert tenants.wallet.held == 0

    pg_proxy.restore()
    wait_for(lambda: not any(outbox_dir.glob("*.json")), what="the replay")

    event = assert_charged_once(request_id)
    assert event.pk == placeholder.pk  # the placeholder became the call's event
    assert (event.endpoint, event.stream, event.model_requested) == ("messages", True, "fake-chat")
    assert event.created_at < placeholder.created_at  # dated when the call was answered
    assert LedgerEntry.objects.get(kind="capture", reference=request_id).description == LATE_CAPTURE
    assert holds_sweep() == 0  # nothing left for the sweeper
    assert_books_balance(tenants)


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_without_the_database_a_call_gets_a_503_with_retry_after_and_nothing_goes_upstream(
    tenants, gateway, pg_proxy, provider, api
):
    gw = gateway(DB_POOL_TIMEOUT="1")
    assert call(gw.url, "warm", api=api)["status"] == 200  # key, target, price, wallet cached
    pg_proxy.cut()
    started = time.monotonic()
    held = call(gw.url, "hold", api=api)  # fails at the hold
    streamed = call(gw.url, "stream", api=api, stream=True)
    cold = call(gw.url, "cold", api=api, key=OUTSIDER_KEY)  # fails at the key lookup
    models = httpx.get(f"{gw.url}/v1/models", headers={"Authorization": f"Bearer {OUTSIDER_KEY}"})
    elapsed = time.monotonic() - started

    for reply in (held, streamed, cold):
        assert reply["status"] == 503
        assert reply["headers"]["retry-after"] == "2"
        body = json.loads(reply["text"])
        if api == "openai":
            assert (body["error"]["code"], body["error"]["type"]) == (
                "database_unavailable",
                "server_error",
            )
        else:
            assert body["type"] == "error"
            assert body["error"]["type"] == "overloaded_error"
        assert "nothing was sent to the provider" in (body["error"]["message"])
    assert models.status_code == 503
    assert elapsed < 15  # each waited at most the pool's timeout (1 s here), not forever
    assert provider.received == {"warm"}

    pg_proxy.restore()
    wait_for(lambda: call(gw.url, "after", api=api)["status"] == 200, what="the database back")
    assert not Hold.objects.filter(status="pending").exists()
    assert set(UsageEvent.objects.values_list("status", flat=True)) == {"ok"}
    assert_books_balance(tenants)
