"""The PostgreSQL fast path against the ORM services: same rows, same balances, same events."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chargeback.errors import InsufficientFunds
from gateway.fastpath import capture_and_record, capture_and_record_fast
from gateway.models import UsageEvent
from gateway.recording import usage_record
from tests.factories import DepartmentFactory, PriceFactory
from tests.pricing.money_writes import event_fields, funded_wallet
from wallets import services
from wallets.fastpath import hold_place_fast
from wallets.models import Hold, LedgerEntry, Wallet

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the fast path is PostgreSQL only"
)


def _orm_capture(hold, amount, event_fields):
    return usage_record(hold, amount, event_fields)


# (hold, captured amount): a normal capture, a zero (release), above the hold, a second capture.
SCRIPT = [("3.00", "1.25"), ("2.00", "0"), ("0.50", "0.75"), ("1.00", "0.10")]


def _run(wallet, place, capture, prefix):
    holds = []
    for i, (held, charged) in enumerate(SCRIPT):
        hold = place(wallet=wallet, amount=Decimal(held), request_id=f"{prefix}{i}")
        holds.append(hold)
        capture(hold, Decimal(charged), event_fields(wallet, f"{prefix}{i}", Decimal(charged)))
    # A hold already resolved: nothing is charged; the event records cost 0 and says why, or
    # nothing is written when the request already has its event.
    returned = [
        capture(holds[0], Decimal("5"), event_fields(wallet, f"{prefix}again", Decimal("5"))),
        capture(holds[0], Decimal("5"), event_fields(wallet, f"{prefix}0", Decimal("5"))),
    ]
    pending = place(wallet=wallet, amount=Decimal("0.33"), request_id=f"{prefix}open")
    return [*holds, pending], returned


def _snapshot(wallet, holds):
    wallet.refresh_from_db()
    entries = [
        (
            e.kind,
            e.amount,
            e.balance_after,
            e.currency,
            e.reference.split("_", 1)[-1],
            e.description,
        )
        for e in LedgerEntry.objects.filter(wallet=wallet).order_by("id")
    ]
    hold_rows = [
        (h.amount, h.status, h.captured_amount, h.organization_id, h.wallet_id == wallet.pk)
        for h in Hold.objects.filter(pk__in=[h.pk for h in holds]).order_by("id")
    ]
    events = [
        (
            e.request_id.split("_", 1)[1],
            e.cost,
            e.prompt_tokens,
            e.completion_tokens,
            e.cached_tokens,
            e.tags,
            e.user,
            e.wallet_id == wallet.pk,
            e.status,
            e.http_status,
            e.organization_id,
            e.usage_source,
            e.currency,
            e.error_code,
            e.price_id,
            e.model_served,
            e.endpoint,
        )
        for e in UsageEvent.objects.filter(wallet=wallet).order_by("id")
    ]
    return (wallet.balance, wallet.held), entries, hold_rows, events


@pytest.mark.django_db
def test_the_fast_path_writes_the_same_rows_as_the_orm_services(org):
    orm_wallet = funded_wallet(DepartmentFactory(organization=org, team_id="team_orm"))
    fast_wallet = funded_wallet(DepartmentFactory(organization=org, team_id="team_fast"))

    orm_holds, orm_returned = _run(orm_wallet, services.hold_place, _orm_capture, "orm_")
    fast_holds, fast_returned = _run(fast_wallet, hold_place_fast, capture_and_record_fast, "fast_")

    orm, fast = _snapshot(orm_wallet, orm_holds), _snapshot(fast_wallet, fast_holds)
    assert fast == orm
    assert fast_returned == orm_returned == [Decimal("7.90"), None]
    assert fast[3][-1][13] == "hold_already_resolved"
    assert fast[0] == (Decimal("7.90"), Decimal("0.33"))  # 10 - 1.25 - 0.75 - 0.10, one open hold
    assert len(fast[1]) == 4  # the allocation and three captures


@pytest.mark.django_db
def test_the_fast_hold_returns_a_hold_like_the_orm_one(engineering):
    wallet = funded_wallet(engineering)

    before = timezone.now()
    hold = hold_place_fast(wallet=wallet, amount=Decimal("1.234567891"), request_id="req_1")
    after = timezone.now()

    stored = Hold.objects.get(pk=hold.pk)
    for name in ("organization_id", "wallet_id", "request_id", "amount"):
        assert getattr(hold, name) == getattr(stored, name)
    assert stored.amount == Decimal("1.23456789")
    assert stored.status == Hold.Status.PENDING
    ttl = timedelta(seconds=settings.KT_HOLD_TTL_SECONDS)
    assert before + ttl <= stored.expires_at <= after + ttl
    assert services.hold_release(hold=hold) is True  # usable by the ORM services


@pytest.mark.django_db
def test_the_fast_hold_refuses_more_than_available_and_writes_nothing(engineering):
    wallet = funded_wallet(engineering, "1.00")

    with pytest.raises(InsufficientFunds) as exc:
        hold_place_fast(wallet=wallet, amount=Decimal("1.01"), request_id="req_1")

    assert exc.value.available == Decimal("1.00")
    assert exc.value.required == Decimal("1.01")
    assert not Hold.objects.exists()
    wallet.refresh_from_db()
    assert wallet.held == Decimal("0")


@pytest.mark.django_db
def test_without_enforcement_the_fast_hold_may_exceed_the_funds(engineering):
    wallet = funded_wallet(engineering, "1.00")

    hold_place_fast(wallet=wallet, amount=Decimal("5"), request_id="req_1", enforce=False)

    wallet.refresh_from_db()
    assert wallet.held == Decimal("5")


@pytest.mark.django_db
def test_a_duplicate_request_id_reserves_nothing(engineering):
    wallet = funded_wallet(engineering)
    hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_1")

    with pytest.raises(IntegrityError), transaction.atomic():
        hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_1")

    wallet.refresh_from_db()
    assert wallet.held == Decimal("1")


@pytest.mark.django_db
def test_a_duplicate_event_rolls_back_the_whole_capture(engineering):
    wallet = funded_wallet(engineering)
    first = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_1")
    second = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_2")
    capture_and_record_fast(first, Decimal("0.5"), event_fields(wallet, "req_1", Decimal("0.5")))
    UsageEvent.objects.create(**event_fields(wallet, "req_2", Decimal("0")))  # req_2 has an event

    with pytest.raises(IntegrityError), transaction.atomic():
        capture_and_record_fast(
            second, Decimal("0.5"), event_fields(wallet, "req_2", Decimal("0.5"))
        )

    wallet.refresh_from_db()
    assert Hold.objects.get(pk=second.pk).status == Hold.Status.PENDING
    assert (wallet.balance, wallet.held) == (Decimal("9.5"), Decimal("1"))
    assert LedgerEntry.objects.filter(kind="capture").count() == 1


@pytest.mark.django_db
def test_a_capture_never_resolves_another_requests_hold_that_has_its_id(engineering):
    # After a database crash that lost an unflushed hold, its id may be handed out again: the
    # request that still holds the old id must not capture the new request's hold.
    wallet = funded_wallet(engineering)
    other = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_new")
    lost = Hold(pk=other.pk, wallet_id=wallet.pk, amount=Decimal("2"), request_id="req_lost")

    capture_and_record_fast(lost, Decimal("0.5"), event_fields(wallet, "req_lost", Decimal("0.5")))

    wallet.refresh_from_db()
    assert Hold.objects.get(pk=other.pk).status == Hold.Status.PENDING
    assert (wallet.balance, wallet.held) == (Decimal("10"), Decimal("1"))
    event = UsageEvent.objects.get(request_id="req_lost")
    assert (event.cost, event.error_code) == (0, "hold_already_resolved")
    assert not LedgerEntry.objects.filter(kind="capture").exists()


@pytest.mark.django_db
def test_the_orm_capture_matches_the_hold_by_request_id_too(engineering):
    wallet = funded_wallet(engineering)
    other = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_new")
    lost = Hold(pk=other.pk, wallet_id=wallet.pk, amount=Decimal("2"), request_id="req_lost")

    assert services.hold_capture(hold=lost, amount=Decimal("0.5")) is None

    wallet.refresh_from_db()
    assert Hold.objects.get(pk=other.pk).status == Hold.Status.PENDING
    assert (wallet.balance, wallet.held) == (Decimal("10"), Decimal("1"))


@pytest.mark.django_db
def test_the_capture_returns_the_available_funds_and_links_the_entry(engineering):
    wallet = funded_wallet(engineering)
    price = PriceFactory()
    hold = hold_place_fast(wallet=wallet, amount=Decimal("2"), request_id="req_1")
    other = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_2")

    available = capture_and_record_fast(
        hold, Decimal("0.5"), event_fields(wallet, "req_1", Decimal("0.5"), price=price)
    )

    entry = LedgerEntry.objects.get(kind="capture")
    assert available == Decimal("8.5")  # 10 - 0.5 charged - 1 still held by the other hold
    assert entry.hold_id == hold.pk
    assert entry.reference == "req_1"
    assert entry.balance_after == Decimal("9.5")
    assert UsageEvent.objects.get(request_id="req_1").price == price
    assert Hold.objects.get(pk=other.pk).status == "pending"


@pytest.mark.django_db
def test_an_event_without_a_hold_moves_no_money(engineering):
    wallet = funded_wallet(engineering)

    available = capture_and_record_fast(
        None, Decimal("0.5"), event_fields(wallet, "req_1", Decimal("0.5"))
    )

    wallet.refresh_from_db()
    assert available == Decimal("10")
    assert wallet.balance == Decimal("10")
    assert UsageEvent.objects.get(request_id="req_1").cost == Decimal("0.5")


@pytest.mark.django_db
def test_the_budget_hook_runs_after_the_capture_commits(
    engineering, monkeypatch, django_capture_on_commit_callbacks
):
    from gateway import hooks

    calls = []
    monkeypatch.setattr(hooks, "_listeners", [lambda **kwargs: calls.append(kwargs)])
    wallet = funded_wallet(engineering)
    hold = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_1")

    with django_capture_on_commit_callbacks(execute=True):
        capture_and_record_fast(hold, Decimal("0.5"), event_fields(wallet, "req_1", Decimal("0.5")))

    assert calls == [
        {
            "organization_id": wallet.organization_id,
            "department_id": wallet.department_id,
            "wallet_id": wallet.pk,
        }
    ]


def _threads(n, fn, items):
    def run(item):
        try:
            return fn(item)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, items))


@pytest.mark.django_db(transaction=True)
def test_concurrent_fast_holds_never_overspend_the_wallet(org):
    wallet = funded_wallet(DepartmentFactory(organization=org), "10.00")
    barrier = threading.Barrier(8)

    def place(i):
        if i < 8:
            barrier.wait()
        try:
            return hold_place_fast(wallet=wallet, amount=Decimal("1.00"), request_id=f"req_{i}")
        except InsufficientFunds:
            return None

    holds = [h for h in _threads(8, place, range(24)) if h is not None]

    wallet.refresh_from_db()
    assert len(holds) == 10
    assert wallet.held == Decimal("10.00")
    assert Hold.objects.filter(status="pending").count() == 10


@pytest.mark.django_db(transaction=True)
def test_a_hold_raced_by_capture_and_release_is_resolved_exactly_once(org):
    wallet = funded_wallet(DepartmentFactory(organization=org), "10.00")
    holds = [
        hold_place_fast(wallet=wallet, amount=Decimal("0.50"), request_id=f"req_{i}")
        for i in range(12)
    ]

    def race(item):
        kind, hold = item
        if kind == "capture":
            result = capture_and_record(
                hold, Decimal("0.40"), event_fields(wallet, hold.request_id, Decimal("0.40"))
            )
            return result.resolved
        if kind == "capture-again":
            result = capture_and_record(
                hold, Decimal("0.40"), event_fields(wallet, f"{hold.request_id}_b", Decimal("0.40"))
            )
            return result.resolved
        return services.hold_release(hold=hold, status=Hold.Status.EXPIRED)

    items = [(k, h) for h in holds for k in ("capture", "capture-again", "release")]
    results = _threads(6, race, items)

    wallet.refresh_from_db()
    wins = [sum(results[i * 3 : i * 3 + 3]) for i in range(len(holds))]
    captures = LedgerEntry.objects.filter(wallet=wallet, kind="capture")
    assert wins == [1] * len(holds)
    assert wallet.held == Decimal("0")
    assert wallet.balance == Decimal("10.00") - Decimal("0.40") * captures.count()
    assert wallet.balance == sum(e.amount for e in LedgerEntry.objects.filter(wallet=wallet))
    assert captures.count() == Hold.objects.filter(status="captured").count()
    assert UsageEvent.objects.count() == 24  # both capture calls recorded an event, once each
    balances = sorted(e.balance_after for e in captures)
    assert len(set(balances)) == len(balances)  # each capture saw the one before it


@pytest.mark.django_db
def test_with_async_commit_the_rows_are_the_same_and_only_that_transaction_skips_the_flush(
    org, settings
):
    settings.KT_GATEWAY_ASYNC_COMMIT = True
    orm_wallet = funded_wallet(DepartmentFactory(organization=org, team_id="team_orm"))
    fast_wallet = funded_wallet(DepartmentFactory(organization=org, team_id="team_fast"))

    orm_holds, _ = _run(orm_wallet, services.hold_place, _orm_capture, "orm_")
    fast_holds, _ = _run(fast_wallet, hold_place_fast, capture_and_record_fast, "fast_")

    assert _snapshot(fast_wallet, fast_holds) == _snapshot(orm_wallet, orm_holds)
    with connection.cursor() as cursor:  # the test's transaction is still open
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "off"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("setting", "expected"), [(True, "off"), (False, "on")])
def test_the_capture_skips_the_flush_exactly_when_async_commit_is_set(
    engineering, settings, setting, expected
):
    settings.KT_GATEWAY_ASYNC_COMMIT = setting
    wallet = funded_wallet(engineering)
    hold = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_1")  # committed
    with transaction.atomic():  # the capture alone, on Django's connection
        capture_and_record_fast(hold, Decimal("0.5"), event_fields(wallet, "req_1", Decimal("0.5")))
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == expected


@pytest.mark.django_db(transaction=True)
def test_async_commit_does_not_leak_into_the_next_transaction(engineering, settings):
    settings.KT_GATEWAY_ASYNC_COMMIT = True
    wallet = funded_wallet(engineering)
    with transaction.atomic():  # on Django's connection, which the check below reuses
        hold = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_1")
    with transaction.atomic():
        capture_and_record_fast(hold, Decimal("0.5"), event_fields(wallet, "req_1", Decimal("0.5")))

    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


@pytest.mark.django_db(transaction=True)
def test_a_hold_skips_the_wal_flush_and_a_capture_waits_for_it_by_default(engineering):
    wallet = funded_wallet(engineering)
    with transaction.atomic():
        hold = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_1")
        assert _synchronous_commit() == "off"  # the hold's own transaction only
    with transaction.atomic():
        capture_and_record_fast(hold, Decimal("0.5"), event_fields(wallet, "req_1", Decimal("0.5")))
        assert _synchronous_commit() == "on"

    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("9.5")


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_the_statements_stay_small_enough_for_psycopg_to_cache_their_parsing(settings):
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH, MAX_CACHED_STATEMENT_PARAMS

    from gateway.fastpath import _capture_sql
    from wallets.fastpath import _hold_place_sql

    for sql in (_capture_sql(True)[0], _capture_sql(False)[0], _hold_place_sql(True)[0]):
        assert len(sql.encode()) <= MAX_CACHED_STATEMENT_LENGTH
        assert len(set(re.findall(r"%\((\w+)\)s", sql))) <= MAX_CACHED_STATEMENT_PARAMS
