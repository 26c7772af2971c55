"""The daily spend rollups answer exactly what summing the raw events answers.

A seeded, varied dataset: two organizations (one in a time zone whose days do not start at a
UTC hour), events around local midnights and month ends, no department, several providers and
models, failed requests, cache hits (cost 0, or the organization's cache price, with what they
saved), refunds (ledger entries: they never change events), a late capture replacing a $0
placeholder (an UPDATE), deleted events and a change of time zone; every figure compared, to
the last decimal, with the events summed as gateway/selectors.py did before the rollups,
before and after the deltas are folded.
"""

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.test.utils import CaptureQueriesContext

from chargeback.models import Department, Organization
from gateway import rollups, selectors
from gateway.models import UsageEvent
from gateway.rollup_models import SpendDaily, SpendDelta, SpendUserDaily, SpendUserMonth
from gateway.rollups import rollups_fold, rollups_rebuild
from gateway.selectors import CACHE_HITS, CACHE_SAVED_SUM, COST_SUM, events_in_range
from reports.admin_columns import annotate_departments
from reports.dashboards.selectors import daily_spend
from tests.factories import DepartmentFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

# "user" and the group read the per-user rollup: its months (SpendUserMonth) for whole months.
FIELDS = ["department__team_id", "model_requested", "provider", "user", selectors.GROUP_NAME]
RANGES = [
    (date(2026, 3, 1), date(2026, 3, 31)),
    (date(2026, 4, 1), date(2026, 4, 30)),
    (date(2026, 4, 15), date(2026, 4, 15)),
    (date(2026, 2, 27), date(2026, 5, 2)),
]


def raw_spend_by(*, field, department=None, **scope):
    """spend_by as it summed the events before the rollups."""
    rows = (
        events_in_range(department=department, **scope)
        .values(field)
        .annotate(
            cache_saved=CACHE_SAVED_SUM,
            cache_hits=CACHE_HITS,
            cost=COST_SUM,
            requests=Count("id"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
        )
        .order_by("-cost", field)
    )
    figures = selectors.SPEND_FIGURES
    return [{"key": r[field], **{k: r[k] for k in figures}} for r in rows]


def raw_total(*, department=None, **scope):
    events = events_in_range(department=department, **scope)
    return events.aggregate(saved=CACHE_SAVED_SUM, total=COST_SUM)


def raw_provider_billed(**scope):
    """What each provider billed as reconciliation summed it from the events: all but hits."""
    rows = (
        events_in_range(**scope)
        .exclude(status=UsageEvent.Status.CACHE_HIT)
        .values("provider")
        .annotate(cost=COST_SUM)
    )
    return {r["provider"]: r["cost"] for r in rows}


def raw_daily(*, organization, date_from, date_to, department=None):
    """The department page's daily chart as it summed the events before the rollups."""
    rows = (
        events_in_range(
            organization=organization, date_from=date_from, date_to=date_to, department=department
        )
        .annotate(day=TruncDate("created_at", tzinfo=organization.tz))
        .values("day")
        .annotate(cost=COST_SUM)
    )
    by_day = {r["day"]: r["cost"] for r in rows}
    days = (date_to - date_from).days + 1
    return [
        (day, by_day.get(day, Decimal(0)))
        for day in (date_from + timedelta(days=n) for n in range(days))
    ]


@pytest.fixture
def dataset():
    rng = random.Random(18)
    kolkata = OrganizationFactory(name="Mumbai", slug="mumbai", time_zone="Asia/Kolkata")
    berlin = OrganizationFactory(name="Berlin", slug="berlin", time_zone="Europe/Berlin")
    departments = {
        org.pk: [DepartmentFactory(organization=org, team_id=f"team_{n}") for n in range(4)]
        + [None]
        for org in (kolkata, berlin)
    }
    models = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude"), ("x", "m")]
    events = []
    start = datetime(2026, 2, 26, tzinfo=UTC)
    for n in range(1500):
        org = rng.choice((kolkata, berlin))
        provider, model = rng.choice(models)
        status = rng.choice(["ok"] * 6 + ["cache_hit", "cache_hit", "provider_error", "timeout"])
        hit = status == "cache_hit"
        if n % 10 == 0:  # right around a local midnight of the organization
            day = start + timedelta(days=rng.randrange(70))
            local = day.astimezone(org.tz).replace(hour=0, minute=0, second=0, microsecond=0)
            at = local + timedelta(seconds=rng.choice((-1, 0, 1)))
        else:
            at = start + timedelta(seconds=rng.randrange(70 * 86400))
        cost = Decimal(rng.randrange(0, 10**9)) / 10**8
        events.append(
            UsageEvent(
                organization=org,
                department=rng.choice(departments[org.pk]),
                request_id=f"roll-{n}",
                user=f"u{rng.randrange(7)}",
                endpoint="chat.completions",
                provider=provider,
                model_requested=model,
                prompt_tokens=rng.randrange(5000),
                completion_tokens=rng.randrange(2000),
                cost=(rng.choice((Decimal(0), Decimal("0.00012"))) if hit else cost),
                saved=cost if hit else Decimal(0),
                status=status,
                created_at=at,
            )
        )
    UsageEvent.objects.bulk_create(events[:1000], batch_size=333)
    for event in events[1000:]:  # one statement each, as the gateway writes them
        event.save()
    return kolkata, berlin, departments


def assert_months_sum_the_days(org):
    """SpendUserMonth is SpendUserDaily summed by month, whatever wrote the daily rows."""
    days = SpendUserDaily.objects.filter(organization=org).order_by()
    by_month = {}
    for row in days.values("day", "department_id", "user", "consumer_group_id", "cost", "requests"):
        key = (
            row["day"].replace(day=1),
            row["department_id"],
            row["user"],
            row["consumer_group_id"],
        )
        cost, requests = by_month.get(key, (0, 0))
        by_month[key] = (cost + row["cost"], requests + row["requests"])
    months = SpendUserMonth.objects.filter(organization=org).exclude(requests=0, cost=0)
    assert {
        (m.day, m.department_id, m.user, m.consumer_group_id): (m.cost, m.requests) for m in months
    } == {key: value for key, value in by_month.items() if value != (0, 0)}


def assert_rollups_equal_events(*organizations):
    for org in organizations:
        org.refresh_from_db()
        assert_months_sum_the_days(org)
        departments = [None, *Department.objects.filter(organization=org)]
        for date_from, date_to in RANGES:
            scope = {"organization": org, "date_from": date_from, "date_to": date_to}
            billed = selectors.provider_billed(**scope)
            assert billed == raw_provider_billed(**scope), (org, date_from)
            for department in departments:
                raw = raw_total(department=department, **scope)
                total = selectors.spend_total(department=department, **scope)
                assert total == raw["total"], (org, date_from, department)
                saved = selectors.cache_saved_total(department=department, **scope)
                assert saved == raw["saved"], (org, date_from, department)
                for field in FIELDS:
                    got = selectors.spend_by(field=field, department=department, **scope)
                    want = raw_spend_by(field=field, department=department, **scope)
                    assert got == want, (org, date_from, department, field)
                assert daily_spend(department=department, **scope) == raw_daily(
                    department=department, **scope
                ), (org, date_from, department)


def test_every_figure_equals_the_events_before_and_after_the_fold(dataset):
    kolkata, berlin, _ = dataset
    assert SpendDelta.objects.exists()
    assert_rollups_equal_events(kolkata, berlin)
    rollups_fold()
    assert not SpendDelta.objects.exists()
    assert SpendDaily.objects.filter(organization=kolkata).exists()
    assert SpendUserMonth.objects.filter(organization=kolkata).exists()
    assert_rollups_equal_events(kolkata, berlin)


def test_updates_deletes_refunds_and_a_new_time_zone_keep_them_equal(dataset):
    kolkata, berlin, departments = dataset
    rollups_fold()
    # A late capture replaces its request's $0 placeholder (gateway/recording.py).
    placeholder = UsageEvent.objects.filter(organization=berlin, status="ok").first()
    UsageEvent.objects.filter(pk=placeholder.pk).update(cost=Decimal("0"))
    rollups_fold()
    UsageEvent.objects.filter(pk=placeholder.pk).update(cost=Decimal("12.34567891"))
    # Events gone (an organization's data removed), one department's share moved elsewhere.
    UsageEvent.objects.filter(organization=kolkata, request_id__endswith="7").delete()
    UsageEvent.objects.filter(department=departments[berlin.pk][0], provider="x").update(
        department=departments[berlin.pk][1], created_at=datetime(2026, 4, 15, 3, tzinfo=UTC)
    )
    assert_rollups_equal_events(kolkata, berlin)
    rollups_fold()
    assert_rollups_equal_events(kolkata, berlin)
    # Another time zone: every event may fall on another day.
    Organization.objects.filter(pk=kolkata.pk).update(time_zone="America/Los_Angeles")
    assert_rollups_equal_events(kolkata, berlin)


def test_a_refund_is_a_ledger_entry_and_leaves_the_spend_figures_as_the_events_say(
    engineering, django_capture_on_commit_callbacks
):
    from tests.budgets.helpers import record_spend
    from wallets import services

    services.wallet_allocate(department=engineering, amount=Decimal("100"), currency="USD")
    for cost in ("1.23456789", "2", "0.00000001"):
        record_spend(department=engineering, amount=cost)
    charged = UsageEvent.objects.filter(department=engineering).first()
    services.wallet_refund(
        organization=engineering.organization, request_id=charged.request_id, reason="credit"
    )
    org = engineering.organization
    today = datetime.now(tz=org.tz).date()
    scope = {"organization": org, "date_from": today.replace(day=1), "date_to": today}
    assert selectors.spend_total(**scope) == raw_total(**scope)["total"] == Decimal("3.23456790")


def test_month_figures_do_not_read_the_events(dataset):
    kolkata, _, _ = dataset
    scope = {"organization": kolkata, "date_from": date(2026, 3, 1), "date_to": date(2026, 3, 31)}
    with CaptureQueriesContext(connection) as queries:
        selectors.spend_total(**scope)
        selectors.cache_saved_total(**scope)
        for field in FIELDS:
            selectors.spend_by(field=field, **scope)
        selectors.provider_billed(**scope)
    assert queries.captured_queries
    assert not [q for q in queries.captured_queries if "gateway_usageevent" in q["sql"]]


def test_the_rebuild_command_restores_lost_rollups(dataset):
    kolkata, berlin, _ = dataset
    rollups_fold()
    SpendDaily.objects.filter(organization=kolkata).delete()
    SpendDaily.objects.filter(organization=berlin).update(cost=Decimal("999"))
    SpendUserMonth.objects.filter(organization=berlin).update(cost=Decimal("999"))
    call_command("spend_rollups_rebuild", "--organization", "mumbai")
    assert_rollups_equal_events(kolkata)
    call_command("spend_rollups_rebuild")
    assert_rollups_equal_events(kolkata, berlin)
    rollups_rebuild(organization=berlin)
    assert_rollups_equal_events(berlin)


def test_the_beat_folds_the_deltas_every_minute(dataset, settings):
    from gateway.tasks import fold_spend_rollups

    entry = settings.CELERY_BEAT_SCHEDULE["gateway-fold-spend-rollups"]
    assert entry["task"] == fold_spend_rollups.name
    assert entry["schedule"] == 60.0
    assert fold_spend_rollups.delay().get(timeout=10) > 0
    assert not SpendDelta.objects.exists()
    assert fold_spend_rollups() == 0


def test_the_admin_departments_month_columns_equal_the_events(dataset):
    kolkata, berlin, _ = dataset
    rollups_fold()
    UsageEvent.objects.filter(organization=berlin, request_id__endswith="3").update(cost=1)
    with time_machine.travel(datetime(2026, 4, 20, 12, tzinfo=UTC), tick=False):
        for organizations in ([kolkata], [kolkata, berlin]):  # one time zone, and a CASE of two
            departments = annotate_departments(
                Department.objects.filter(organization__in=organizations),
                organizations=organizations,
            )
            for department in departments:
                raw = raw_total(
                    organization=department.organization,
                    date_from=date(2026, 4, 1),
                    date_to=date(2026, 4, 30),
                    department=department,
                )
                assert department.mtd_spend == raw["total"], department
                assert department.mtd_cache_saved == raw["saved"], department


def test_without_rollup_triggers_the_same_figures_come_from_the_events(dataset, monkeypatch):
    """SQLite (the embedded demo) has no triggers: the readers sum the events, and every figure
    is the same as the rollups give."""
    kolkata, berlin, _ = dataset
    SpendDaily.objects.all().delete()
    SpendDelta.objects.all().delete()
    monkeypatch.setattr(rollups, "rollups_in_use", lambda: False)
    assert_rollups_equal_events(kolkata, berlin)
    assert rollups.rollups_fold() == 0
