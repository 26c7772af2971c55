"""The rollups' migrations on a database that already has events (an upgrade): the first fill
makes the daily rows equal the events, and the triggers keep them so afterwards."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Sum

from gateway.models import UsageEvent
from gateway.rollup_models import SpendDaily
from gateway.rollups import rollup_total
from tests.factories import DepartmentFactory, OrganizationFactory

BEFORE = [("gateway", "0006_routing_failover_policies")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.django_db(transaction=True)
def test_upgrading_a_database_with_events_fills_the_rollups_from_them():
    latest = [("gateway", MigrationExecutor(connection).loader.graph.leaf_nodes("gateway")[0][1])]
    org = OrganizationFactory(time_zone="Europe/Berlin")
    department = DepartmentFactory(organization=org)
    _migrate(BEFORE)
    # The events as that schema had them (the current model may have columns added since).
    old_event = (
        MigrationExecutor(connection)
        .loader.project_state(BEFORE)
        .apps.get_model("gateway", "UsageEvent")
    )
    try:
        for n, cost in enumerate(("1.25", "0.00000001", "3.5")):
            old_event.objects.create(
                organization_id=org.pk,
                department_id=department.pk,
                request_id=f"before-upgrade-{n}",
                endpoint="chat.completions",
                provider="openai",
                model_requested="gpt-4o",
                cost=Decimal(cost),
                status="ok",
            )
    finally:
        _migrate(latest)

    assert SpendDaily.objects.filter(organization=org).aggregate(s=Sum("cost"))["s"] == Decimal(
        "4.75000001"
    )
    event = UsageEvent.objects.filter(organization=org).first()
    day = event.created_at.astimezone(org.tz).date()
    UsageEvent.objects.filter(pk=event.pk).update(cost=Decimal("2.00"))  # the trigger follows
    total = rollup_total(organization=org, date_from=day, date_to=day)
    assert total["cost"] == UsageEvent.objects.aggregate(s=Sum("cost"))["s"]
    assert total["requests"] == 3


@pytest.mark.django_db(transaction=True)
def test_the_repeat_and_user_rollups_go_back_and_come_again_with_events():
    """gateway 0011 and 0010 reversed with events there (0008's triggers back, its rows kept),
    then applied again: the first fill counts the repeats and users of the events present."""

    from django.utils import timezone

    from reports.dashboards.selectors import _repeats_from_events, repeats_by

    latest = [("gateway", MigrationExecutor(connection).loader.graph.leaf_nodes("gateway")[0][1])]
    org = OrganizationFactory(time_zone="Europe/Berlin")
    department = DepartmentFactory(organization=org)
    for n, cost in enumerate(("1.25", "0.5", "3.5", "2")):
        UsageEvent.objects.create(
            organization=org,
            department=department,
            request_id=f"repeat-{n}",
            user=f"u{n % 2}",
            endpoint="chat.completions",
            provider="openai",
            model_requested="gpt-4o",
            cost=Decimal(cost),
            status="ok",
            prompt_fingerprint="a" * 64 if n else "b" * 64,
        )
    _migrate([("gateway", "0009_usage_event_no_fingerprint_index")])
    try:
        with connection.cursor() as cursor:  # 0008's rollups, as it left them
            cursor.execute(
                "SELECT sum(cost) FROM (SELECT cost FROM gateway_spenddaily WHERE"
                " organization_id = %s UNION ALL SELECT cost FROM gateway_spenddelta WHERE"
                " organization_id = %s) r",
                [org.pk, org.pk],
            )
            assert cursor.fetchone()[0] == Decimal("7.25")
    finally:
        _migrate(latest)
    today = timezone.now().astimezone(org.tz).date()
    scope = {"organization": org, "date_from": today.replace(day=1), "date_to": today}
    got = repeats_by(field="user", **scope)
    assert got == _repeats_from_events(
        fields=("user",), keyed_by_tuple=False, department=None, **scope
    )
    assert sum(r.repeated for r in got.values()) == 2


@pytest.mark.django_db(transaction=True)
def test_one_delta_table_upgrade_folds_the_user_deltas_and_fills_what_hits_cost():
    """gateway 0013 on a database whose user deltas were not folded yet and whose cache hits
    have a price: nothing is lost with the user delta table, and cache_cost is filled in."""
    from gateway import selectors
    from gateway.rollups import rollup_figures

    latest = [("gateway", MigrationExecutor(connection).loader.graph.leaf_nodes("gateway")[0][1])]
    org = OrganizationFactory(time_zone="Asia/Kolkata")
    department = DepartmentFactory(organization=org)
    _migrate([("gateway", "0012_exchange_rates")])
    old_event = (
        MigrationExecutor(connection)
        .loader.project_state([("gateway", "0012_exchange_rates")])
        .apps.get_model("gateway", "UsageEvent")
    )
    try:
        for n, (provider, status, cost) in enumerate(
            [
                ("openai", "ok", "1.25"),
                ("openai", "cache_hit", "0.00015"),
                ("openai", "cache_hit", "0"),
                ("anthropic", "cache_hit", "0.00015"),
                ("anthropic", "ok", "0.5"),
            ]
        ):
            old_event.objects.create(
                organization_id=org.pk,
                department_id=department.pk if n % 2 else None,
                request_id=f"one-delta-{n}",
                user=f"u{n % 2}",
                endpoint="chat.completions",
                provider=provider,
                model_requested="m",
                cost=Decimal(cost),
                status=status,
            )
        with connection.cursor() as cursor:  # both rollups' deltas are there, unfolded
            cursor.execute("SELECT count(*) FROM gateway_spenduserdelta")
            assert cursor.fetchone()[0] == 5
    finally:
        _migrate(latest)

    day = UsageEvent.objects.first().created_at.astimezone(org.tz).date()
    scope = {"organization": org, "date_from": day, "date_to": day}
    users = rollup_figures(group_by=("user",), **scope)
    assert {key: (f["requests"], f["cost"]) for key, f in users.items()} == {
        ("u0",): (3, Decimal("1.75")),
        ("u1",): (2, Decimal("0.00030")),
    }
    assert rollup_figures(**scope)[()]["cache_cost"] == Decimal("0.00030")
    assert selectors.provider_billed(**scope) == {
        "openai": Decimal("1.25"),
        "anthropic": Decimal("0.5"),
    }
