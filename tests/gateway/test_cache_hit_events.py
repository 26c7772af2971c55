"""Free cache hits' events written together (gateway/response_cache/hit_events.py): hits that
arrive while another's event is being written share one multi-row INSERT, and each hit still
gets its own event exactly once, or its own error (real PostgreSQL, real threads).

Each runs with one and with four events written at once (KT_RESPONSE_CACHE_HIT_PARALLEL).
To make a batch happen on cue, a test keeps uncommitted events with the first `parallel` hits'
request ids from a connection of its own: those hits (each a leader, alone) wait on them in
PostgreSQL, the hits started meanwhile queue, and the first leader done writes them together.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection

from gateway.groupcommit import GroupCommit
from gateway.models import UsageEvent
from gateway.response_cache import hit_events
from gateway.response_cache.hit_events import _one_sql, hit_event_record
from tests.factories import DepartmentFactory
from tests.pricing.money_writes import event_fields, funded_wallet
from wallets.fastpath import statement_params
from wallets.models import LedgerEntry, Wallet

from .conftest import cache_on, live_db

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="group commit is PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(params=[1, 4])
def group(request, monkeypatch):
    """This process's hit group, writing `group.parallel` events at once, fresh for the test."""
    fresh = GroupCommit(hit_events.execute_one, hit_events._together, parallel=request.param)
    fresh.parallel = request.param
    monkeypatch.setattr(hit_events, "hit_group", fresh)
    return fresh


def _until(condition, what):
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _lock_waiters(conn) -> list[int]:
    """Backends of this database waiting for a lock (a row's or a transaction's)."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
    ]


class Hits:
    """Hits' events written in threads; `results[request_id]` is what hit_event_record returned
    (the wallet's available funds) or the error it raised."""

    def __init__(self):
        self.threads, self.results = [], {}

    def start(self, fields):
        def run():
            try:
                self.results[fields["request_id"]] = hit_event_record(fields)
            except Exception as exc:  # noqa: BLE001 - the test asserts which failed, and how
                self.results[fields["request_id"]] = exc
            finally:
                connection.close()  # as a request's end does (the metrics looked names up)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self):
        for thread in self.threads:
            thread.join(20)


def _hit(wallet, request_id):
    return {
        **event_fields(wallet, request_id, Decimal("0")),
        "status": UsageEvent.Status.CACHE_HIT,
        "saved": Decimal("0.0042"),
    }


def _blocker(connect, wallet, *request_ids):
    """A connection holding uncommitted events with `request_ids`: a hit with one of them waits
    for it to commit (a duplicate) or roll back."""
    sql, param_fields = _one_sql()  # the hit's own statement, in a transaction left open
    conn = connect()
    for request_id in request_ids:
        conn.execute(sql, statement_params(param_fields, _hit(wallet, request_id)))
    return conn


def _queue(connect, group, wallet, n, *, also_blocked=None):
    """Start n hits while the first `group.parallel` ones' request ids are blocked: those lead and wait
    in PostgreSQL, the others queue. `also_blocked`: a second request id held by another
    connection (the batch of the others then waits on it). Returns the running hits, the
    first blocker, the second (or None) and a connection to watch lock waits with."""
    monitor = connect(autocommit=True)
    first = _blocker(connect, wallet, *(f"req_{i}" for i in range(group.parallel)))
    second = _blocker(connect, wallet, also_blocked) if also_blocked else None
    hits = Hits()
    for i in range(group.parallel):
        hits.start(_hit(wallet, f"req_{i}"))
    _until(
        lambda: len(_lock_waiters(monitor)) == group.parallel, "the leaders to wait in PostgreSQL"
    )
    for i in range(group.parallel, n):
        hits.start(_hit(wallet, f"req_{i}"))
    _until(lambda: group.waiting(None) == n - group.parallel, "the others to queue")
    return hits, first, second, monitor


@pytest.mark.parametrize("sync_commit", [False, True])  # KT_RESPONSE_CACHE_HIT_SYNC_COMMIT
def test_fifty_hits_that_arrive_together_are_written_in_one_statement_each_once(
    org, connect, group, settings, sync_commit
):
    settings.KT_RESPONSE_CACHE_HIT_SYNC_COMMIT = sync_commit
    wallet = funded_wallet(DepartmentFactory(organization=org))
    before = (group.batches, group.fallbacks)

    hits, first, _second, _monitor = _queue(connect, group, wallet, 50)
    first.rollback()
    hits.join()

    # The leaders each alone, then the 46 others together.
    assert group.batches - before[0] == group.parallel + 1
    assert group.largest >= 50 - group.parallel
    assert group.fallbacks == before[1]
    events = UsageEvent.objects.filter(wallet=wallet)
    assert sorted(events.values_list("request_id", flat=True)) == sorted(
        f"req_{i}" for i in range(50)
    )
    assert {(e.status, e.cost, e.saved) for e in events} == {
        ("cache_hit", Decimal("0"), Decimal("0.0042"))
    }
    # The wallet untouched: no hold, no ledger entry but its funding; every hit was told its
    # available funds.
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal("10.00"), Decimal("0"))
    assert LedgerEntry.objects.filter(wallet=wallet).exclude(kind="allocation").count() == 0
    assert set(hits.results.values()) == {Decimal("10.00")}


def test_a_hit_that_fails_in_a_batch_fails_alone_and_the_others_get_their_events(
    org, connect, group
):
    wallet = funded_wallet(DepartmentFactory(organization=org))
    fallbacks = group.fallbacks

    hits, first, second, monitor = _queue(connect, group, wallet, 10, also_blocked="req_7")
    first.rollback()  # the leaders write theirs; the batch of six waits on req_7's blocker
    _until(lambda: len(hits.results) == group.parallel and _lock_waiters(monitor), "the batch")
    second.commit()  # req_7 has an event already: the batch fails
    hits.join()

    assert group.fallbacks == fallbacks + 1  # rolled back whole, then one by one
    assert isinstance(hits.results["req_7"], IntegrityError)  # answered with an error
    assert all(hits.results[f"req_{i}"] == Decimal("10.00") for i in range(10) if i != 7)
    events = UsageEvent.objects.filter(organization=org)
    # Each once; req_7's is the blocker's own.
    assert sorted(events.values_list("request_id", flat=True)) == [f"req_{i}" for i in range(10)]


def test_a_batch_whose_connection_is_cut_loses_no_event(org, connect, group):
    wallet = funded_wallet(DepartmentFactory(organization=org))

    hits, first, second, monitor = _queue(connect, group, wallet, 10, also_blocked="req_7")
    first.rollback()
    _until(lambda: len(hits.results) == group.parallel and _lock_waiters(monitor), "the batch")
    (batch_backend,) = _lock_waiters(monitor)
    monitor.execute("SELECT pg_terminate_backend(%s)", [batch_backend])
    second.rollback()  # the hits retry one by one (gateway/capture.py): nothing in their way
    hits.join()

    assert not [r for r in hits.results.values() if isinstance(r, Exception)]
    events = UsageEvent.objects.filter(organization=org)
    assert sorted(events.values_list("request_id", flat=True)) == [f"req_{i}" for i in range(10)]
    assert set(events.values_list("status", flat=True)) == {"cache_hit"}
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("10.00")


def test_without_group_commit_every_hit_is_written_alone(org, settings):
    settings.KT_GATEWAY_GROUP_COMMIT = False
    wallet = funded_wallet(DepartmentFactory(organization=org))
    batches = hit_events.hit_group.batches
    hits = Hits()
    for i in range(5):
        hits.start(_hit(wallet, f"req_{i}"))
    hits.join()

    assert hit_events.hit_group.batches == batches
    assert set(hits.results.values()) == {Decimal("10.00")}
    assert UsageEvent.objects.filter(wallet=wallet, status="cache_hit").count() == 5


QUESTION = [{"role": "user", "content": "How many hits make one chargeback row each?"}]


@live_db
def test_fifty_concurrent_hits_through_the_gateway_each_have_their_event_once(gw, oai, cache_store):
    cache_on(gw.org)
    first = oai.chat.completions.with_raw_response.create(model="fake-chat", messages=QUESTION)
    paid = UsageEvent.objects.get()
    barrier = threading.Barrier(50)

    def hit(_):
        barrier.wait()
        return oai.chat.completions.with_raw_response.create(model="fake-chat", messages=QUESTION)

    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(hit, range(50)))

    assert first.headers["x-kt-cache"] == "miss"
    assert [r.headers["x-kt-cache"] for r in replies] == ["hit"] * 50
    hits = UsageEvent.objects.filter(status="cache_hit")
    # One event per answered hit, each under the request id its reply carried.
    assert sorted(hits.values_list("request_id", flat=True)) == sorted(
        r.headers["x-kt-request-id"] for r in replies
    )
    assert {(e.cost, e.saved) for e in hits} == {(Decimal("0"), paid.cost)}
    # The wallet paid the one call, nothing for the hits, and every hit said so.
    wallet = gw.refresh()
    assert wallet.balance == Decimal("10.00") - paid.cost
    assert wallet.held == Decimal("0")
    assert LedgerEntry.objects.filter(wallet=wallet, kind="capture").count() == 1
    assert {r.headers["x-kt-wallet-available"] for r in replies} == {str(wallet.balance)}
