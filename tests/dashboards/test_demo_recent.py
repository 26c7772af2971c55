"""The demo looks alive today (demo/recent.py): simulated months after May 2026 through the
current month, May still exactly the seed's $62,000, and dashboards that open on the current
month with a link to the last complete one. The clock is pinned to 2026-08-10."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from chargeback.models import Membership, Organization
from chargeback.periods import day_range
from demo.recent import demo_recent
from gateway.models import UsageEvent
from gateway.selectors import spend_total

NOW = datetime(2026, 8, 10, 15, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def acme(django_db_setup, django_db_blocker):
    """Seed once for the module inside a transaction rolled back at the end."""
    with (
        time_machine.travel(NOW, tick=False),
        django_db_blocker.unblock(),
        transaction.atomic(),
    ):
        call_command("demo_seed")
        first = demo_recent()
        yield {"organization": Organization.objects.get(slug="acme"), "first": first}
        transaction.set_rollback(True)


def _events(organization, month: date, last_day: int):
    start, end = day_range(organization, month, month.replace(day=last_day))
    return UsageEvent.objects.filter(
        organization=organization, created_at__gte=start, created_at__lt=end
    )


def test_every_month_after_may_through_today_has_traffic_and_may_is_unchanged(acme):
    org = acme["organization"]

    assert acme["first"]["months"] == [date(2026, 6, 1), date(2026, 7, 1), date(2026, 8, 1)]
    may = spend_total(organization=org, date_from=date(2026, 5, 1), date_to=date(2026, 5, 31))
    assert may == Decimal("62000.00")
    june = spend_total(organization=org, date_from=date(2026, 6, 1), date_to=date(2026, 6, 30))
    assert june > may  # a little more each month
    assert _events(org, date(2026, 7, 1), 31).count() > 100
    august = _events(org, date(2026, 8, 1), 31)
    assert august.exists()
    assert not august.filter(created_at__gt=NOW).exists()  # month-to-date only


def test_running_it_again_adds_nothing(acme):
    with time_machine.travel(NOW, tick=False):
        again = demo_recent()

    assert (again["created"], again["months"]) == (0, [])


def test_the_dashboard_opens_on_the_current_month_with_a_link_to_the_last_complete_one(acme):
    org = acme["organization"]
    user = get_user_model().objects.create_user("finance-demo", is_staff=True)
    Membership.objects.create(user=user, organization=org, role=Membership.Role.FINANCE)
    client = Client()
    client.force_login(user)

    with time_machine.travel(NOW, tick=False):
        page = client.get("/dashboard/").content.decode()
        july = client.get("/dashboard/?month=2026-07").content.decode()

    assert "<h1>August 2026</h1>" in page
    assert 'href="?month=2026-07">Last complete month: July 2026</a>' in page
    assert "Nothing this month." not in page
    assert "Last complete month" not in july  # already there
