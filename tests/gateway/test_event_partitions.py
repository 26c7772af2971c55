"""Usage events partitioned by calendar month (UTC) on PostgreSQL (gateway migration 0014,
gateway/partitions.py): each event lands in its month's partition, the default partition takes
anything else and `events_partitions` moves it out, one event per request id holds across
months, and the rollups still equal the raw events after inserts, updates and deletes that
cross months."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from gateway.fastpath import capture_and_record
from gateway.models import UsageEvent
from gateway.partitions import month_partitions, partitioned, partitions_ensure
from gateway.recording import event_record
from gateway.rollup_models import SpendDaily
from gateway.rollups import rollups_fold
from tests.factories import DepartmentFactory, OrganizationFactory
from tests.gateway.test_spend_rollups import assert_rollups_equal_events, dataset  # noqa: F401
from tests.pricing.money_writes import event_fields, funded_wallet
from wallets import services
from wallets.fastpath import hold_place_fast
from wallets.models import Hold

pytestmark = pytest.mark.django_db

MARCH = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def department():
    return DepartmentFactory(organization=OrganizationFactory())


def event(department, request_id, at, cost="1.25"):
    return UsageEvent.objects.create(
        organization=department.organization,
        department=department,
        request_id=request_id,
        endpoint="chat.completions",
        provider="openai",
        model_requested="gpt-4o",
        cost=Decimal(cost),
        created_at=at,
    )


def partition_of(event) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM gateway_usageevent WHERE id = %s", [event.pk]
        )
        return cursor.fetchone()[0]


def test_the_table_is_partitioned_on_postgresql():
    assert partitioned()
    now = datetime.now(UTC)
    assert f"gateway_usageevent_p{now:%Y_%m}" in month_partitions().values()


def test_an_event_lands_in_its_months_partition(department):
    created = partitions_ensure(now=MARCH, ahead=2).created
    assert created == [
        "gateway_usageevent_p2026_03",
        "gateway_usageevent_p2026_04",
        "gateway_usageevent_p2026_05",
    ]
    assert partition_of(event(department, "r-march", MARCH + timedelta(days=30))) == (
        "gateway_usageevent_p2026_03"
    )
    assert partition_of(event(department, "r-april", datetime(2026, 4, 1, tzinfo=UTC))) == (
        "gateway_usageevent_p2026_04"
    )
    assert partitions_ensure(now=MARCH, ahead=2).created == []  # idempotent


def test_the_default_partition_takes_a_month_without_one_and_the_command_moves_it(department):
    far = event(department, "r-far", datetime(2031, 7, 9, 12, tzinfo=UTC), cost="3.5")
    assert partition_of(far) == "gateway_usageevent_default"
    rollups_fold()
    before = list(SpendDaily.objects.values_list("day", "requests", "cost"))

    call_command("events_partitions")

    assert partition_of(far) == "gateway_usageevent_p2031_07"
    assert UsageEvent.objects.get(pk=far.pk).cost == Decimal("3.5")
    rollups_fold()  # the move is not an insert or a delete for the rollups
    assert list(SpendDaily.objects.values_list("day", "requests", "cost")) == before
    with pytest.raises(IntegrityError), transaction.atomic():  # still its request's one event
        event(department, "r-far", datetime(2031, 7, 10, tzinfo=UTC))


def test_a_request_id_has_one_event_across_months(department):
    event(department, "r-1", datetime(2026, 3, 31, 23, 59, tzinfo=UTC))
    with pytest.raises(IntegrityError), transaction.atomic():
        event(department, "r-1", datetime(2026, 4, 1, tzinfo=UTC))
    with pytest.raises(IntegrityError), transaction.atomic():
        event(department, "r-1", datetime(2026, 3, 31, 23, 59, tzinfo=UTC))
    fields = {
        "organization": department.organization,
        "department": department,
        "request_id": "r-1",
        "endpoint": "chat.completions",
        "created_at": datetime(2026, 6, 2, tzinfo=UTC),
    }
    assert event_record(fields, announce=False) is False  # as before: "it has its event"
    assert UsageEvent.objects.filter(request_id="r-1").count() == 1


def test_a_deleted_or_moved_event_frees_or_keeps_its_request_id(department):
    partitions_ensure(now=MARCH, ahead=1)
    moved = event(department, "r-move", datetime(2026, 3, 5, tzinfo=UTC))
    # Moving an event to another month's partition (a late capture replacing a placeholder
    # dated by the hold's expiry) is a delete and an insert inside PostgreSQL.
    UsageEvent.objects.filter(pk=moved.pk).update(created_at=datetime(2026, 4, 2, tzinfo=UTC))
    assert partition_of(moved) == "gateway_usageevent_p2026_04"
    with pytest.raises(IntegrityError), transaction.atomic():
        event(department, "r-move", datetime(2026, 3, 6, tzinfo=UTC))
    UsageEvent.objects.filter(pk=moved.pk).delete()
    assert partition_of(event(department, "r-move", datetime(2026, 3, 6, tzinfo=UTC)))


def test_rollups_equal_the_events_across_month_partitions(dataset):  # noqa: F811
    kolkata, berlin, _ = dataset
    moved = partitions_ensure(now=MARCH, ahead=0)
    assert moved.created == [
        "gateway_usageevent_p2026_02",
        "gateway_usageevent_p2026_03",
        "gateway_usageevent_p2026_04",
        "gateway_usageevent_p2026_05",
    ]
    assert moved.moved == UsageEvent.objects.count() == 1500
    assert moved.left_in_default == 0
    assert_rollups_equal_events(kolkata, berlin)

    # Updates that move events across months, in both directions, and deletes in several.
    march = UsageEvent.objects.filter(created_at__month=3).order_by("id")[:40]
    UsageEvent.objects.filter(pk__in=[e.pk for e in march]).update(
        created_at=datetime(2026, 4, 30, 22, 30, tzinfo=UTC), cost=Decimal("0.33333333")
    )
    april = UsageEvent.objects.filter(created_at__month=4).order_by("-id")[:40]
    for e in april:
        e.created_at -= timedelta(days=35)
        e.save()
    every_37th = list(UsageEvent.objects.order_by("id").values_list("id", flat=True))[::37]
    UsageEvent.objects.filter(pk__in=every_37th).delete()
    assert_rollups_equal_events(kolkata, berlin)
    rollups_fold()
    assert_rollups_equal_events(kolkata, berlin)


def test_a_capture_for_a_request_with_its_event_writes_no_second_one(department):
    # The capture statement's "hold resolved elsewhere" branch wrote its $0 event with `ON
    # CONFLICT (request_id) DO NOTHING`; the partitioned table has no such key, and
    # gateway_event_new() (a fresh read of the request ids) keeps the same outcome.
    wallet = funded_wallet(department)
    hold = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_swept")
    services.hold_release(hold=hold, status=Hold.Status.EXPIRED)
    placeholder = {**event_fields(wallet, "req_swept", Decimal("0")), "status": "expired"}
    assert event_record(placeholder, announce=False)

    result = capture_and_record(
        hold, Decimal("0.5"), event_fields(wallet, "req_swept", Decimal("0.5"))
    )

    assert (result.resolved, result.entry_id, result.event_id) == (False, None, None)
    assert UsageEvent.objects.filter(request_id="req_swept").count() == 1

    other = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_released")
    services.hold_release(hold=other)
    result = capture_and_record(
        other, Decimal("0.5"), event_fields(wallet, "req_released", Decimal("0.5"))
    )
    event = UsageEvent.objects.get(request_id="req_released")  # none yet: the $0 one is written
    assert (result.event_id, event.cost, event.error_code) == (event.pk, 0, "hold_already_resolved")


def test_the_daily_task_keeps_two_months_ahead(settings):
    beat = settings.CELERY_BEAT_SCHEDULE["gateway-ensure-event-partitions"]
    assert beat["task"] == "gateway.tasks.ensure_event_partitions"
    from gateway.tasks import ensure_event_partitions

    with time_machine.travel(datetime(2031, 11, 20, tzinfo=UTC), tick=False):
        assert ensure_event_partitions.apply().get() == 3  # November, December, January
        assert ensure_event_partitions.apply().get() == 0
    names = set(month_partitions().values())
    assert {"gateway_usageevent_p2031_12", "gateway_usageevent_p2032_01"} <= names
