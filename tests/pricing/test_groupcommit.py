"""Group commit: captures that arrive together share one transaction, with each request's
guarantees intact (real PostgreSQL, real threads).

To make a batch happen on cue, a test keeps the wallet's row locked from its own connection:
the first capture (the leader) waits on it in PostgreSQL, the captures started meanwhile queue
behind it, and the next leader runs them together once the lock goes.
"""

import threading
import time
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection

from gateway.fastpath import capture_and_record, capture_group
from gateway.models import UsageEvent
from tests.factories import DepartmentFactory
from tests.pricing.money_writes import event_fields, funded_wallet
from wallets.fastpath import hold_place_fast
from wallets.models import Hold, LedgerEntry, Wallet

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="group commit is PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]


def _until(condition, what):
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _lock_waits(conn) -> int:
    """Backends of this database waiting for a row lock."""
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'"
    ).fetchone()[0]


class Captures:
    """Captures started in threads; `results[request_id]` is a CaptureResult or the error."""

    def __init__(self):
        self.threads, self.results = [], {}

    def start(self, hold, amount, event):
        def run():
            try:
                self.results[event["request_id"]] = capture_and_record(hold, amount, event)
            except Exception as exc:  # noqa: BLE001 - the test asserts which failed, and how
                self.results[event["request_id"]] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self):
        for thread in self.threads:
            thread.join(20)


def _queue_behind_locked_wallet(connect, wallet, holds, events):
    """Start a capture per hold while the wallet's row is locked: the first leads and waits in
    PostgreSQL, the others queue. Returns the running captures, the locking connection and one
    to watch PostgreSQL's lock waits with."""
    monitor, locker = connect(autocommit=True), connect()
    locker.execute("SELECT id FROM wallets_wallet WHERE id = %s FOR UPDATE", [wallet.pk])
    captures = Captures()
    captures.start(holds[0], Decimal("0.40"), events[0])
    _until(lambda: _lock_waits(monitor) == 1, "the leader to wait for the wallet")
    for hold, event in zip(holds[1:], events[1:], strict=True):
        captures.start(hold, Decimal("0.40"), event)
    _until(lambda: capture_group.waiting(wallet.pk) == len(holds) - 1, "the others to queue")
    return captures, locker, monitor


def _holds(wallet, n):
    return [
        hold_place_fast(wallet=wallet, amount=Decimal("1.00"), request_id=f"req_{i}")
        for i in range(n)
    ]


def test_captures_that_arrive_together_commit_in_one_transaction(org, connect):
    wallet = funded_wallet(DepartmentFactory(organization=org))
    holds = _holds(wallet, 6)
    events = [event_fields(wallet, h.request_id, Decimal("0.40")) for h in holds]
    before = (capture_group.batches, capture_group.fallbacks)

    captures, locker, _monitor = _queue_behind_locked_wallet(connect, wallet, holds, events)
    locker.commit()
    captures.join()

    assert capture_group.batches - before[0] == 2  # the leader alone, then the five together
    assert capture_group.largest >= 5
    assert capture_group.fallbacks == before[1]
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("10.00") - 6 * Decimal("0.40")
    assert wallet.held == Decimal("0")
    assert wallet.balance == sum(e.amount for e in LedgerEntry.objects.filter(wallet=wallet))
    assert set(Hold.objects.values_list("status", flat=True)) == {"captured"}
    assert UsageEvent.objects.filter(cost=Decimal("0.40")).count() == 6
    # Each capture saw the ones before it in the same transaction: the k-th leaves 6 - k holds
    # pending and has charged k times.
    charged = [Decimal("10.00") - k * Decimal("0.40") for k in range(1, 7)]
    availables = sorted(r.available for r in captures.results.values())
    assert availables == sorted(charged[k - 1] - (6 - k) for k in range(1, 7))
    entries = LedgerEntry.objects.filter(wallet=wallet, kind="capture")
    assert sorted(e.balance_after for e in entries) == sorted(charged)


def test_a_capture_that_fails_in_a_batch_fails_alone(org, connect):
    wallet = funded_wallet(DepartmentFactory(organization=org))
    holds = _holds(wallet, 4)
    events = [event_fields(wallet, h.request_id, Decimal("0.40")) for h in holds]
    UsageEvent.objects.create(**{**events[2], "cost": Decimal("0")})  # req_2 has its event
    fallbacks = capture_group.fallbacks

    captures, locker, _monitor = _queue_behind_locked_wallet(connect, wallet, holds, events)
    locker.commit()
    captures.join()

    assert capture_group.fallbacks == fallbacks + 1  # rolled back whole, then one by one
    assert isinstance(captures.results["req_2"], IntegrityError)
    assert all(captures.results[f"req_{i}"].resolved for i in (0, 1, 3))
    assert Hold.objects.get(request_id="req_2").status == "pending"  # nothing of it written
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("10.00") - 3 * Decimal("0.40")
    assert wallet.held == Decimal("1.00")
    assert wallet.balance == sum(e.amount for e in LedgerEntry.objects.filter(wallet=wallet))


def test_a_batch_never_deadlocks_with_a_writer_that_locks_a_hold_before_its_wallet(org, connect):
    # The ORM capture, release and the expiry sweeper lock a hold, then its wallet. A batch
    # that took the wallet first and then waited for such a hold would deadlock with them.
    wallet = funded_wallet(DepartmentFactory(organization=org))
    holds = _holds(wallet, 4)
    events = [event_fields(wallet, h.request_id, Decimal("0.40")) for h in holds]
    fallbacks, batches = capture_group.fallbacks, capture_group.batches
    captures, locker, monitor = _queue_behind_locked_wallet(connect, wallet, holds, events)

    writer = connect()  # a sweeper's transaction: the hold, then the wallet
    writer.execute("UPDATE wallets_hold SET expires_at = expires_at WHERE id = %s", [holds[2].pk])
    locker.commit()  # the leader captures; the batch of three then waits for the locked hold
    _until(
        lambda: capture_group.batches > batches and _lock_waits(monitor) == 1, "the batch to wait"
    )
    writer.execute("UPDATE wallets_wallet SET held = held WHERE id = %s", [wallet.pk])
    writer.commit()
    captures.join()

    assert capture_group.fallbacks == fallbacks  # no deadlock, no batch rolled back
    assert all(r.resolved for r in captures.results.values())
    wallet.refresh_from_db()
    assert wallet.held == Decimal("0")
    assert wallet.balance == sum(e.amount for e in LedgerEntry.objects.filter(wallet=wallet))


def test_without_group_commit_every_capture_runs_alone(org, settings):
    settings.KT_GATEWAY_GROUP_COMMIT = False
    wallet = funded_wallet(DepartmentFactory(organization=org))
    holds = _holds(wallet, 3)
    batches = capture_group.batches
    captures = Captures()
    for hold in holds:
        captures.start(
            hold, Decimal("0.40"), event_fields(wallet, hold.request_id, Decimal("0.40"))
        )
    captures.join()

    assert capture_group.batches == batches
    assert all(r.resolved for r in captures.results.values())
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("10.00") - 3 * Decimal("0.40")


def test_captures_on_another_wallet_do_not_wait_behind_a_locked_one(org, connect):
    blocked, free = (
        funded_wallet(DepartmentFactory(organization=org)),
        funded_wallet(DepartmentFactory(organization=org)),
    )
    blocked_holds = _holds(blocked, 2)
    free_hold = hold_place_fast(wallet=free, amount=Decimal("1.00"), request_id="req_free")
    events = [event_fields(blocked, h.request_id, Decimal("0.40")) for h in blocked_holds]
    captures, locker, _monitor = _queue_behind_locked_wallet(
        connect, blocked, blocked_holds, events
    )

    other = Captures()
    other.start(free_hold, Decimal("0.40"), event_fields(free, "req_free", Decimal("0.40")))
    other.join()  # while the first wallet's row is still locked
    assert other.results["req_free"].resolved
    assert not any(r in captures.results for r in ("req_0", "req_1"))

    locker.commit()
    captures.join()
    assert all(r.resolved for r in captures.results.values())
