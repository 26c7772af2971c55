"""gateway 0014 on a database that already has events (an upgrade): every event moves into its
month's partition with its id, cost and request id; the rollups are not counted twice; the
request ids already there are refused; new ids continue after the highest. Migrating back
gives the plain table with its unique key again."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Sum

from gateway.models import UsageEvent
from gateway.rollup_models import SpendDaily
from gateway.rollups import rollups_fold
from tests.factories import DepartmentFactory, OrganizationFactory

BEFORE = [("gateway", "0013_one_delta_cache_cost")]


def _latest():
    return [("gateway", MigrationExecutor(connection).loader.graph.leaf_nodes("gateway")[0][1])]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _relkind() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'gateway_usageevent'")
        return cursor.fetchone()[0]


def _events():
    rows = UsageEvent.objects.values_list("id", "request_id", "cost", "created_at")
    return sorted(rows)


@pytest.mark.django_db(transaction=True)
def test_upgrading_moves_every_event_into_its_month_and_back():
    department = DepartmentFactory(organization=OrganizationFactory(time_zone="Asia/Kolkata"))
    _migrate(BEFORE)
    try:
        assert _relkind() == "r"
        # The events as that schema had them (the current model may have columns added since).
        old_event = (
            MigrationExecutor(connection)
            .loader.project_state(BEFORE)
            .apps.get_model("gateway", "UsageEvent")
        )
        for n, (month, cost) in enumerate([(9, "1.25"), (10, "0.00000001"), (11, "3.5")] * 3):
            old_event.objects.create(
                organization_id=department.organization_id,
                department_id=department.pk,
                request_id=f"up-{n}",
                endpoint="chat.completions",
                cost=Decimal(cost),
                created_at=datetime(2026, month, 28 + n % 3, 20, tzinfo=UTC),
            )
        rollups_fold()
        before = _events()
        rolled = SpendDaily.objects.aggregate(n=Sum("requests"), cost=Sum("cost"))
    finally:
        _migrate(_latest())

    assert _relkind() == "p"
    assert _events() == before
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text, count(*) FROM gateway_usageevent GROUP BY 1 ORDER BY 1"
        )
        assert cursor.fetchall() == [
            ("gateway_usageevent_p2026_09", 3),
            ("gateway_usageevent_p2026_10", 3),
            ("gateway_usageevent_p2026_11", 3),
        ]
    rollups_fold()
    assert SpendDaily.objects.aggregate(n=Sum("requests"), cost=Sum("cost")) == rolled
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageEvent.objects.create(organization=department.organization, request_id="up-4")
    new = UsageEvent.objects.create(organization=department.organization, request_id="up-new")
    assert new.pk > max(pk for pk, *_ in before)

    _migrate(BEFORE)
    try:
        assert _relkind() == "r"
        assert UsageEvent.objects.aggregate(n=Count("id"))["n"] == 10
        with pytest.raises(IntegrityError), transaction.atomic():
            UsageEvent.objects.create(organization=department.organization, request_id="up-new")
    finally:
        _migrate(_latest())
