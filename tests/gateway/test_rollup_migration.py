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
