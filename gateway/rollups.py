"""Spend figures from the daily rollups (gateway/rollup_models.py), for whole days of the
organization's calendar: the daily rows plus the deltas not folded yet, so exactly what summing
the raw events gives (tests/gateway/test_spend_rollups.py and test_rollup_repeats.py compare
them), in a few milliseconds whatever the month's size. What a rollup key can answer: the
events' department, provider, model (SpendDaily), user and consumer group (SpendUserDaily), with
premium spend, repeated prompts and what cache hits cost as figures; other groupings (tags,
currency) sum the events.

The rollups are kept by PostgreSQL triggers (gateway/migrations/0013_one_delta_cache_cost.py).
Other databases (SQLite: the embedded demo, whose months are small) have none: there the same
figures are summed from the events.
"""

from collections import defaultdict
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, timedelta

from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate

from chargeback.models import Department, Organization
from chargeback.money import ZERO, exact_sum
from chargeback.periods import day_range, month_end
from gateway.models import EventArchive, UsageEvent
from gateway.rollup_models import SpendDaily, SpendDelta, SpendUserDaily, SpendUserMonth

# spend_by's event fields -> the rollup's.
FIELDS = {
    "department__team_id": "department__team_id",
    "department_id": "department_id",
    "model_requested": "model",
    "provider": "provider",
    "user": "user",
    "consumer_group_id": "consumer_group_id",
}
# Rollup fields only the per-user rollup has.
_USER_FIELDS = {"user", "consumer_group_id"}
FIGURES = (
    "cost",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cache_hits",
    "cache_saved",
    "premium_requests",
    "premium_cost",
    "fingerprinted",
    "fingerprinted_cost",
    "firsts",
    "first_cost",
    "cache_cost",
)
_AMOUNTS = ("cost", "cache_saved", "premium_cost", "fingerprinted_cost", "first_cost", "cache_cost")
# Named apart from the fields they sum (an annotation may not shadow its own field).
_SUMS = {f"sum_{name}": Sum(name) for name in FIGURES}
# The same sums over the events, and the events' field for each rollup field.
_HIT = Q(status=UsageEvent.Status.CACHE_HIT)
_PREMIUM = Q(price__premium=True)
_REPEATABLE = Q(status=UsageEvent.Status.OK) & ~Q(prompt_fingerprint="")
_EVENT_SUMS = {
    "sum_cost": Sum("cost"),
    "sum_requests": Count("id"),
    "sum_prompt_tokens": Sum("prompt_tokens"),
    "sum_completion_tokens": Sum("completion_tokens"),
    "sum_cache_hits": Count("id", filter=_HIT),
    "sum_cache_saved": Sum(F("saved") - F("cost"), filter=_HIT),
    "sum_cache_cost": Sum("cost", filter=_HIT),
    "sum_premium_requests": Count("id", filter=_PREMIUM),
    "sum_premium_cost": Sum("cost", filter=_PREMIUM),
    "sum_fingerprinted": Count("id", filter=_REPEATABLE),
    "sum_fingerprinted_cost": Sum("cost", filter=_REPEATABLE),
}
# A rollup field -> the events' field it comes from.
EVENT_FIELDS = {value: key for key, value in FIELDS.items()}
_LAST_MONTH = date(9999, 12, 1)  # "ever" ends in it (no month after it to compute)


def rollups_in_use() -> bool:
    """True where triggers keep the rollups (PostgreSQL)."""
    return connection.vendor == "postgresql"


_memo: ContextVar[dict | None] = ContextVar("rollup_memo", default=None)


@contextmanager
def rollups_memo():
    """Within it, the same rollup_figures question is answered once: a page asks for its
    month's totals or per-user figures under several names (spend, savings, premium share,
    repeats), and a user grouping is thousands of rows. For one request's reads only: the
    answers are as of their first query."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def rollup_figures(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    group_by: tuple[str, ...] = (),
    department: Department | int | None = None,
) -> dict[tuple, dict]:
    """{group key: {FIGURES}} over the days [date_from, date_to], grouped by rollup fields
    (FIELDS' values; `day` too). Groups without any event (all their events deleted or moved)
    are left out, as a GROUP BY over the events would. Without rollups (SQLite) `firsts` and
    `first_cost` are 0: repeats are counted from the events there (reports' repeats_by).
    Read-only: inside rollups_memo() the same dictionaries answer the same question again."""
    memo = _memo.get()
    if memo is None:
        return _rollup_figures(organization, date_from, date_to, tuple(group_by), department)
    key = (
        organization.pk,
        date_from,
        date_to,
        tuple(group_by),
        getattr(department, "pk", department),
    )
    if key not in memo:
        memo[key] = _rollup_figures(organization, date_from, date_to, tuple(group_by), department)
    return memo[key]


def _rollup_figures(organization, date_from, date_to, group_by, department) -> dict[tuple, dict]:
    merged: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
    if rollups_in_use():
        found = []
        user = _USER_FIELDS.intersection(group_by)
        # One delta table holds both rollups' keys; a user grouping reads whole months from
        # the month rows and the other days from the daily ones.
        if user:
            months, days = _months_and_days(date_from, date_to)
            sources = [(SpendUserMonth, months), (SpendUserDaily, days)]
        else:
            sources = [(SpendDaily, [(date_from, date_to)])]
        sources.append((SpendDelta, [(date_from, date_to)]))
        for model, ranges in sources:
            if not ranges:
                continue
            within = Q()
            for first, last in ranges:
                within |= Q(day__gte=first, day__lte=last)
            rows = model.objects.filter(within, organization=organization)
            if department is not None:
                rows = rows.filter(department=department)
            found += _summed(rows.order_by(), group_by, _SUMS)
    else:
        found = _event_rows(organization, date_from, date_to, group_by, department)
    for row in found:
        figures = merged[tuple(row[f] for f in group_by)]
        for name in FIGURES:
            figures[name] += row.get(f"sum_{name}") or 0
    if rollups_in_use():  # PostgreSQL sums exactly: every amount read is already exact
        return {key: f for key, f in merged.items() if f["requests"]}
    return {
        key: {**f, **{name: exact_sum(f[name]) for name in _AMOUNTS}}
        for key, f in merged.items()
        if f["requests"]
    }


def _months_and_days(date_from: date, date_to: date) -> tuple[list, list]:
    """[date_from, date_to] as the whole calendar months in it (as (first, last) month starts
    for SpendUserMonth, whose `day` is the month's first) and the days before and after them."""
    first = date_from if date_from.day == 1 else _next_month(date_from)
    whole = date_to.replace(day=1) < _LAST_MONTH and date_to == month_end(date_to)
    after = _next_month(date_to) if whole else date_to.replace(day=1)
    if first >= after:  # no whole month: days only
        return [], [(date_from, date_to)]
    months = [(first, (after - timedelta(days=1)).replace(day=1))]
    days = []
    if date_from < first:
        days.append((date_from, first - timedelta(days=1)))
    if after <= date_to:
        days.append((after, date_to))
    return months, days


def _next_month(day: date) -> date:
    return month_end(day) + timedelta(days=1)


def _summed(rows, group_by: tuple[str, ...], sums: dict) -> list[dict]:
    return list(rows.values(*group_by).annotate(**sums)) if group_by else [rows.aggregate(**sums)]


def _event_rows(organization, date_from, date_to, group_by, department) -> list[dict]:
    """rollup_figures' rows summed from the events (no rollups on this database)."""
    start, end = day_range(organization, date_from, date_to)
    events = UsageEvent.objects.filter(
        organization=organization, created_at__gte=start, created_at__lt=end
    )
    if department is not None:
        events = events.filter(department=department)
    events = events.order_by()
    if not group_by:
        return [events.aggregate(**_EVENT_SUMS)]
    keys = {  # aliased: an annotation may not take a field's name
        f"key_{n}": TruncDate("created_at", tzinfo=organization.tz)
        if field == "day"
        else F(EVENT_FIELDS[field])
        for n, field in enumerate(group_by)
    }
    rows = events.values(**keys).annotate(**_EVENT_SUMS)
    return [{**row, **{f: row[f"key_{n}"] for n, f in enumerate(group_by)}} for row in rows]


def rollup_total(
    *,
    organization: Organization,
    date_from: date,
    date_to: date,
    department: Department | None = None,
) -> dict:
    """The figures of the whole range (zeros when there are no events)."""
    totals = rollup_figures(
        organization=organization, date_from=date_from, date_to=date_to, department=department
    )
    return totals.get((), {**dict.fromkeys(FIGURES, 0), **dict.fromkeys(_AMOUNTS, ZERO)})


def rollups_fold() -> int:
    """Move the deltas into the daily rows (exactly once; see the migration's SQL). The beat
    task runs it every minute; readers are exact without it, only slower as deltas pile up."""
    if not rollups_in_use():
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT gateway_spend_fold()")
        return cursor.fetchone()[0]


class RebuildRefused(Exception):
    """Months of events were archived: a rebuild would drop their days from the rollups."""


def rollups_rebuild(*, organization: Organization) -> None:
    """Recompute the organization's rollups from its events (exact even while it is serving).
    Refused (RebuildRefused) once a month of events was archived: the rebuild deletes the days
    that have no events, and the archived months' events are gone (docs/operations.md)."""
    if not rollups_in_use():
        return
    if EventArchive.objects.exists():
        raise RebuildRefused(
            "months of usage events were archived (manage.py events_archive): a rebuild would"
            " drop their days from the rollups"
        )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT gateway_spend_rebuild(%s)", [organization.pk])
        cursor.execute("SELECT gateway_spend_user_month_rebuild(%s)", [organization.pk])
