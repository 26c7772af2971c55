"""Premium spend, repeated prompts and the per-user / per-consumer-group rollup answer exactly
what the events answer, for every scope and period a page asks.

A seeded dataset like test_spend_rollups.py's (two time zones, events around local midnights
and month ends, failed requests, cache hits, no department), plus: prompt fingerprints drawn
from a small set so prompts repeat, events written out of time order (a late event earlier
than its fingerprint's first so far), users and consumer groups, and a model whose price turns
premium in the middle of a month (a second price row). Then updates, deletes, a premium flag
flipped on a price, and a new time zone. Each figure is compared with the events summed or
walked in time order as reports/dashboards/selectors.py did before (its event path).
"""

import random
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.db.models import Count, Q, Sum
from django.test.utils import CaptureQueriesContext

from chargeback.models import Department, Organization
from chargeback.money import to_cents
from gateway import selectors
from gateway.models import Price, UsageEvent
from gateway.rollup_models import PromptMonth
from gateway.rollups import rollups_fold, rollups_rebuild
from gateway.selectors import COST_SUM, events_in_range
from reports.dashboards import selectors as dash
from tests.factories import ConsumerGroupFactory, DepartmentFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

MONTHS = [(date(2026, 3, 1), date(2026, 3, 31)), (date(2026, 4, 1), date(2026, 4, 30))]
# Every page asks a month, or the first days of one (the department page's month to date).
RANGES = [*MONTHS, (date(2026, 4, 1), date(2026, 4, 12)), (date(2026, 3, 1), date(2026, 3, 1))]
REPEAT_FIELDS = [
    "department_id",
    "department__team_id",
    "model_requested",
    "provider",
    "user",
    "consumer_group__name",
]


def raw_repeats(*, field, **scope):
    return dash._repeats_from_events(
        fields=(field,), keyed_by_tuple=False, **{"department": None, **scope}
    )


def raw_premium_by_department(**scope):
    qs = events_in_range(**scope).filter(price__premium=True)
    return {
        r["department_id"]: r["cost"] for r in qs.values("department_id").annotate(cost=COST_SUM)
    }


def raw_premium_models(**scope):
    qs = events_in_range(**scope).filter(price__premium=True)
    rows = qs.values("model_requested").annotate(cost=COST_SUM).order_by("-cost", "model_requested")
    return [r["model_requested"] for r in rows]


def raw_spend_by(*, field, **scope):
    rows = (
        events_in_range(**scope)
        .values(field)
        .annotate(
            cache_saved=selectors.CACHE_SAVED_SUM,
            cache_hits=selectors.CACHE_HITS,
            cost=COST_SUM,
            requests=Count("id"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
        )
        .order_by("-cost", field)
    )
    return [{"key": r[field], **{k: r[k] for k in selectors.SPEND_FIGURES}} for r in rows]


def raw_premium_share(*, organization, department_id, month):
    start = datetime.combine(month, datetime.min.time(), tzinfo=organization.tz)
    totals = UsageEvent.objects.filter(
        organization=organization, department_id=department_id, created_at__gte=start
    ).aggregate(total=COST_SUM, premium=Sum("cost", filter=Q(price__premium=True)))
    return (totals["premium"] or 0) / totals["total"] if totals["total"] else 0


def raw_top_prompts(**scope):
    qs = events_in_range(**scope).filter(status="ok").exclude(prompt_fingerprint="")
    rows = []
    for group in (
        qs.values("prompt_fingerprint")
        .annotate(requests=Count("id"), cost=COST_SUM)
        .filter(requests__gt=1)
        .order_by("-requests", "-cost", "prompt_fingerprint")[:10]
    ):
        same = qs.filter(prompt_fingerprint=group["prompt_fingerprint"])
        first = same.order_by("created_at", "id").values_list("cost", flat=True).first()
        rows.append((group["prompt_fingerprint"], group["requests"], group["cost"] - first))
    return rows


@pytest.fixture
def dataset():
    rng = random.Random(1818)
    kolkata = OrganizationFactory(name="Mumbai", slug="mumbai", time_zone="Asia/Kolkata")
    berlin = OrganizationFactory(name="Berlin", slug="berlin", time_zone="Europe/Berlin")
    departments, groups = {}, {}
    for org in (kolkata, berlin):
        departments[org.pk] = [
            DepartmentFactory(organization=org, team_id=f"team_{n}") for n in range(3)
        ] + [None]
        groups[org.pk] = [ConsumerGroupFactory(organization=org, name=f"app-{n}") for n in range(3)]
        groups[org.pk].append(None)
    switch = datetime(2026, 3, 16, 12, tzinfo=UTC)  # "m" turns premium mid-month
    prices = {
        "gpt-4o": [(Price.objects.create(**_price("openai", "gpt-4o", True)), None)],
        "mini": [(Price.objects.create(**_price("openai", "mini", False)), None)],
        "claude": [(Price.objects.create(**_price("anthropic", "claude", True)), None)],
        "m": [
            (Price.objects.create(**_price("x", "m", False, end=switch)), switch),
            (Price.objects.create(**_price("x", "m", True, start=switch)), None),
        ],
    }
    providers = {"gpt-4o": "openai", "mini": "openai", "claude": "anthropic", "m": "x"}
    fingerprints = [f"{n:064x}" for n in range(25)] + [""]
    events = []
    start = datetime(2026, 2, 27, tzinfo=UTC)
    for n in range(1600):
        org = rng.choice((kolkata, berlin))
        model = rng.choice(list(prices))
        status = rng.choice(["ok"] * 7 + ["cache_hit", "provider_error", "timeout"])
        hit = status == "cache_hit"
        if n % 10 == 0:
            day = start + timedelta(days=rng.randrange(65))
            local = day.astimezone(org.tz).replace(hour=0, minute=0, second=0, microsecond=0)
            at = local + timedelta(seconds=rng.choice((-1, 0, 1)))
        else:
            at = start + timedelta(seconds=rng.randrange(65 * 86400))
        price = next(p for p, until in prices[model] if until is None or at < until)
        cost = Decimal(rng.randrange(0, 10**9)) / 10**8
        events.append(
            UsageEvent(
                organization=org,
                department=rng.choice(departments[org.pk]),
                consumer_group=rng.choice(groups[org.pk]),
                request_id=f"rep-{n}",
                user=rng.choice(["", "ann", "bob", "cy", "dee"]),
                endpoint="chat.completions",
                provider=providers[model],
                model_requested=model,
                price=price if rng.random() < 0.95 else None,
                prompt_tokens=rng.randrange(5000),
                completion_tokens=rng.randrange(2000),
                cost=(rng.choice((Decimal(0), Decimal("0.00012"))) if hit else cost),
                saved=cost if hit else Decimal(0),
                status=status,
                prompt_fingerprint=rng.choice(fingerprints),
                created_at=at,
            )
        )
    # Batches in time order, then single rows in random order: later rows are often earlier
    # than their fingerprint's first so far.
    events.sort(key=lambda e: e.created_at)
    late = events[::4]
    UsageEvent.objects.bulk_create([e for e in events if e not in late], batch_size=300)
    rng.shuffle(late)
    for event in late:
        event.save()
    return kolkata, berlin, departments, prices


def _price(provider, model, premium, start=datetime(2020, 1, 1, tzinfo=UTC), end=None):
    return {
        "provider": provider,
        "model": model,
        "input_per_mtok": Decimal("1"),
        "output_per_mtok": Decimal("2"),
        "premium": premium,
        "effective_from": start,
        "effective_to": end,
    }


def assert_equal_to_events(*organizations):
    for org in organizations:
        org.refresh_from_db()
        departments = [None, *Department.objects.filter(organization=org)]
        for date_from, date_to in RANGES:
            scope = {"organization": org, "date_from": date_from, "date_to": date_to}
            where = (org.slug, date_from, date_to)
            for field in REPEAT_FIELDS:
                got = dash.repeats_by(field=field, **scope)
                assert got == raw_repeats(field=field, **scope), (*where, field)
            for department in departments:
                in_dept = {**scope, "department": department}
                got = dash.repeats_by_department(**in_dept)
                assert got == raw_repeats(field="department_id", **in_dept), (*where, department)
                assert dash.premium_spend_by_department(**in_dept) == raw_premium_by_department(
                    **in_dept
                ), (*where, department)
                assert dash.premium_models(**in_dept) == raw_premium_models(**in_dept)
                for field in ("user", "consumer_group__name"):
                    got = selectors.spend_by(field=field, **in_dept)
                    assert got == raw_spend_by(field=field, **in_dept), (*where, field)
                if department is not None:
                    top = dash.top_repeated_prompts(**in_dept)
                    want = raw_top_prompts(**in_dept)
                    assert [(r["fingerprint"], r["requests"]) for r in top] == [
                        (f, n) for f, n, _ in want
                    ], (*where, department)
                    assert [r["savings"] for r in top] == [to_cents(saved) for _, _, saved in want]
        for department in departments[1:]:
            for month, _ in MONTHS:
                share = selectors.premium_spend_share(
                    organization=org, department_id=department.pk, month=month
                )
                want = raw_premium_share(organization=org, department_id=department.pk, month=month)
                assert share == want, (org.slug, month, department)


def test_repeats_premium_and_users_equal_the_events_before_and_after_the_fold(dataset):
    kolkata, berlin, _, _ = dataset
    assert PromptMonth.objects.filter(requests__gt=1).exists()
    repeats = dash.repeats_by(
        organization=kolkata, date_from=date(2026, 3, 1), date_to=date(2026, 3, 31), field="user"
    )
    assert sum(r.repeated for r in repeats.values()) > 50  # the dataset does repeat
    assert_equal_to_events(kolkata, berlin)
    rollups_fold()
    assert_equal_to_events(kolkata, berlin)


def test_updates_deletes_a_premium_flag_and_a_time_zone_keep_them_equal(dataset):
    kolkata, berlin, departments, prices = dataset
    rollups_fold()
    # A late capture replaces a $0 placeholder: the first of its fingerprint changes cost.
    first = PromptMonth.objects.filter(organization=berlin, requests__gt=2).first()
    UsageEvent.objects.filter(pk=first.first_id).update(cost=Decimal("0"))
    UsageEvent.objects.filter(pk=first.first_id).update(cost=Decimal("7.12345678"))
    # Firsts deleted (their fingerprint's next event becomes first), a status changed.
    firsts = PromptMonth.objects.filter(organization=kolkata).values_list("first_id", flat=True)
    UsageEvent.objects.filter(pk__in=list(firsts[:5])).delete()
    UsageEvent.objects.filter(organization=kolkata, request_id__endswith="3").delete()
    UsageEvent.objects.filter(organization=berlin, request_id__endswith="5").update(
        status="provider_error"
    )
    # A department's events moved to another department and day.
    UsageEvent.objects.filter(department=departments[berlin.pk][0], provider="x").update(
        department=departments[berlin.pk][1], created_at=datetime(2026, 4, 3, 3, tzinfo=UTC)
    )
    assert_equal_to_events(kolkata, berlin)
    rollups_fold()
    assert_equal_to_events(kolkata, berlin)
    # The catalog's flag changes on a price: its events' premium spend follows.
    Price.objects.filter(pk=prices["mini"][0][0].pk).update(premium=True)
    Price.objects.filter(pk=prices["claude"][0][0].pk).update(premium=False)
    assert_equal_to_events(kolkata, berlin)
    # Another time zone: other days, other months for the events near a month's end.
    Organization.objects.filter(pk=kolkata.pk).update(time_zone="America/Los_Angeles")
    assert_equal_to_events(kolkata, berlin)


def test_a_rebuild_restores_lost_fingerprints(dataset):
    kolkata, berlin, _, _ = dataset
    rollups_fold()
    PromptMonth.objects.filter(organization=kolkata).delete()
    PromptMonth.objects.filter(organization=berlin).update(requests=99, first_cost=0)
    rollups_rebuild(organization=kolkata)
    rollups_rebuild(organization=berlin)
    assert_equal_to_events(kolkata, berlin)


def test_the_pages_month_figures_do_not_read_the_events(dataset):
    kolkata, _, departments, _ = dataset
    scope = {"organization": kolkata, "date_from": date(2026, 3, 1), "date_to": date(2026, 3, 31)}
    department = departments[kolkata.pk][0]
    with CaptureQueriesContext(connection) as queries:
        dash.repeats_by_department(**scope)
        dash.repeats_by(field="model_requested", **scope)
        dash.premium_spend_by_department(**scope)
        dash.premium_models(**scope)
        dash.top_repeated_prompts(department=department, **scope)
        selectors.premium_spend_share(
            organization=kolkata, department_id=department.pk, month=date(2026, 3, 1)
        )
        for field in ("user", "consumer_group__name"):
            selectors.spend_by(field=field, **scope)
    assert queries.captured_queries
    assert not [q for q in queries.captured_queries if "gateway_usageevent" in q["sql"]]


@pytest.mark.django_db(transaction=True)
def test_two_writers_of_one_prompt_agree_on_its_first_whatever_the_commit_order():
    """The later event's transaction holds the fingerprint's row; the earlier event's writer
    waits on it, then finds the stored first later than its own and takes its place."""
    org = OrganizationFactory(time_zone="UTC")
    department = DepartmentFactory(organization=org)
    at = datetime(2026, 3, 10, 12, tzinfo=UTC)
    common = {
        "organization": org,
        "department": department,
        "endpoint": "chat.completions",
        "provider": "openai",
        "status": "ok",
        "prompt_fingerprint": "f" * 64,
    }
    UsageEvent.objects.create(
        request_id="w-0", model_requested="a", cost=Decimal("1"), created_at=at, **common
    )
    written = []

    def earlier():
        try:
            written.append(
                UsageEvent.objects.create(
                    request_id="w-early",
                    model_requested="early",
                    cost=Decimal("0.25"),
                    created_at=at - timedelta(hours=1),
                    **common,
                )
            )
        finally:
            connections.close_all()

    thread = threading.Thread(target=earlier)
    with transaction.atomic():
        UsageEvent.objects.create(
            request_id="w-late",
            model_requested="late",
            cost=Decimal("2"),
            created_at=at + timedelta(hours=1),
            **common,
        )
        thread.start()
        with connection.cursor() as cursor:
            for _ in range(200):  # until the other writer waits for this transaction
                cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if cursor.fetchone()[0]:
                    break
                thread.join(0.05)
            else:
                pytest.fail("the second writer never waited")
    thread.join(20)
    assert written
    scope = {"organization": org, "date_from": date(2026, 3, 1), "date_to": date(2026, 3, 31)}
    got = dash.repeats_by(field="model_requested", **scope)
    assert got == raw_repeats(field="model_requested", **scope)
    assert got["early"] == dash.Repeats(requests=1, repeated=0, repeated_cost=Decimal(0))
    assert got["a"].repeated == got["late"].repeated == 1
    prompt = PromptMonth.objects.get(organization=org)
    assert (prompt.requests, prompt.first_cost) == (3, Decimal("0.25"))
