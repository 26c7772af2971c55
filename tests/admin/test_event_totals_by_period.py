"""The usage events admin's count and totals for a time range (the date hierarchy, or the
reconciliation's created_at__gte/__lt links) are read from the daily rollups for the
organization's whole days and from the events for the hours left at the edges: the same
figures, to the cent, as summing the filtered events, whatever the organization's time zone."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chargeback.models import Membership
from gateway.models import UsageEvent
from tests.admin.conftest import make_event, make_staff
from tests.factories import ConsumerGroupFactory, DepartmentFactory, OrganizationFactory

EVENTS = reverse("admin:gateway_usageevent_changelist")
# UTC times around November 2026 in the admin (UTC) and in Berlin (UTC+1 in November).
MOMENTS = [
    "2026-10-31T22:30",  # Berlin's 31 Oct: outside both Novembers
    "2026-10-31T23:30",  # Berlin's 1 Nov, still October in UTC
    "2026-11-01T00:30",  # both Novembers; in Berlin's first day
    "2026-11-01T23:10",  # Berlin's 2 Nov, a whole Berlin day
    "2026-11-15T12:00",
    "2026-11-15T12:00",
    "2026-11-30T22:59",  # Berlin's 30 Nov
    "2026-11-30T23:30",  # Berlin's 1 Dec, still November in UTC
    "2026-12-01T00:10",  # December in both
]


@pytest.fixture
def scene(db, client):
    orgs = []
    for slug, zone in (("berlin", "Europe/Berlin"), ("rival", "UTC")):
        org = OrganizationFactory(slug=slug, name=slug, time_zone=zone)
        depts = [DepartmentFactory(organization=org, team_id=f"team_{n}") for n in (1, 2)]
        for dept in depts:
            ConsumerGroupFactory(organization=org, department=dept, name=f"g-{slug}-{dept.pk}")
        for n, moment in enumerate(MOMENTS):
            for dept in depts:
                make_event(
                    org,
                    dept,
                    marker=slug,
                    cost=Decimal("0.0041") * (n + 1),
                    created_at=datetime.fromisoformat(moment).replace(tzinfo=UTC),
                    status=UsageEvent.Status.CACHE_HIT if n % 4 == 1 else UsageEvent.Status.OK,
                    saved=Decimal("0.02"),
                )
        orgs.append((org, depts))
    (org, depts), _ = orgs
    client.force_login(make_staff(org, Membership.Role.FINANCE, "berlin_finance"))
    return org, depts


def _summed(org, **lookups) -> dict:
    events = UsageEvent.objects.filter(organization=org, **lookups)
    found = events.aggregate(requests=Count("id"), cost=Sum("cost"))
    return {
        "requests": found["requests"],
        "cost": (found["cost"] or Decimal(0)).quantize(Decimal("0.01")),
    }


@pytest.mark.parametrize(
    ("params", "lookups"),
    [
        (
            {"created_at__year": "2026", "created_at__month": "11"},
            {"created_at__gte": "2026-11-01T00:00Z", "created_at__lt": "2026-12-01T00:00Z"},
        ),
        (
            {"created_at__year": "2026", "created_at__month": "11", "created_at__day": "1"},
            {"created_at__gte": "2026-11-01T00:00Z", "created_at__lt": "2026-11-02T00:00Z"},
        ),
        (
            {"created_at__year": "2026"},
            {"created_at__gte": "2026-01-01T00:00Z", "created_at__lt": "2027-01-01T00:00Z"},
        ),
        (  # the reconciliation's link: Berlin's November, exactly its whole days
            {
                "created_at__gte": "2026-10-31T23:00:00+00:00",
                "created_at__lt": "2026-11-30T23:00:00+00:00",
            },
            {"created_at__gte": "2026-10-31T23:00Z", "created_at__lt": "2026-11-30T23:00Z"},
        ),
        (
            {"created_at__gte": "2026-11-15T00:00:00+00:00"},
            {"created_at__gte": "2026-11-15T00:00Z"},
        ),
    ],
)
def test_period_totals_equal_the_filtered_events_to_the_cent(scene, client, params, lookups):
    org, (dept, _) = scene
    for extra, more in (({}, {}), ({"department__id__exact": str(dept.pk)}, {"department": dept})):
        response = client.get(EVENTS, {**params, **extra})
        totals = response.context["totals"]
        expected = _summed(org, **lookups, **more)
        assert expected["requests"] > 0
        assert {"requests": totals["requests"], "cost": totals["cost"]} == expected
        assert response.context["cl"].result_count == expected["requests"]
        hits = UsageEvent.objects.filter(
            organization=org, status=UsageEvent.Status.CACHE_HIT, **lookups, **more
        )
        assert totals["cache_hits"] == hits.count()


def test_a_month_of_whole_days_reads_no_events_for_its_totals(scene, client):
    """Berlin's November as the reconciliation links it: whole days only, so the count and
    totals come from the rollups and the only event reads are the page and its date bounds."""
    _, (dept, _) = scene
    with CaptureQueriesContext(connection) as queries:
        response = client.get(
            EVENTS,
            {
                "department__id__exact": str(dept.pk),
                "created_at__gte": "2026-10-31T23:00:00+00:00",
                "created_at__lt": "2026-11-30T23:00:00+00:00",
            },
        )
    assert response.context["totals"]["requests"] == 6  # 31 Oct 23:30 to 30 Nov 22:59 UTC
    event_reads = [q["sql"] for q in queries if 'FROM "gateway_usageevent"' in q["sql"]]
    assert not [sql for sql in event_reads if "SUM(" in sql or "COUNT(" in sql], event_reads


def test_other_filters_with_a_period_still_sum_the_events(scene, client):
    org, _ = scene
    response = client.get(
        EVENTS, {"created_at__year": "2026", "created_at__month": "11", "status__exact": "ok"}
    )
    expected = _summed(
        org,
        status="ok",
        created_at__gte="2026-11-01T00:00Z",
        created_at__lt="2026-12-01T00:00Z",
    )
    assert response.context["totals"]["requests"] == expected["requests"]
    assert response.context["totals"]["cost"] == expected["cost"]
