"""The usage events admin without reading a year of events for its frame: the provider and model
filter choices, the result count and the totals above the list come from the daily rollups
(gateway/rollups.py) whenever the active filters are rollup keys (department, consumer group,
provider, model, end user; none at all). A time range (the date hierarchy's year, month or
day, or `created_at__gte` / `__lt` as the reconciliation links give) is answered the same way:
the organization's whole calendar days inside it from the rollups, the hours at its edges that
are not whole days there (another time zone than the admin's) from the events, so the figures
are exactly the events' whatever the zones. The list itself is one page of events by the
organization's time index. Other filters (status, policy, search) count and total the filtered
events, which those filters narrow by index."""

from datetime import UTC, date, datetime, timedelta

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from chargeback.admin_base import InputFilter
from chargeback.admin_scope import request_organization, request_scope
from chargeback.periods import day_range
from gateway.models import UsageEvent
from gateway.rollup_models import SpendDaily, SpendDelta
from gateway.rollups import EVENT_FIELDS, rollup_figures, rollups_in_use
from gateway.selectors import CACHE_HITS, CACHE_SAVED_SUM, COST_SUM

# Filter parameters -> the rollup field they filter on.
ROLLUP_PARAMS = {
    "department__id__exact": "department_id",
    "consumer_group__id__exact": "consumer_group_id",
    "provider__exact": "provider",
    "model_requested__exact": "model",
    "user": "user",
}
_IDS = {"department_id", "consumer_group_id"}
# Which rollup keeps which fields together (one table answers one set of filters).
_TABLES = ({"department_id", "provider", "model"}, {"department_id", "user", "consumer_group_id"})
_PAGE_PARAMS = {"p", "o"}  # page and ordering: no filter
_DATE_PARAMS = {f"created_at__{part}" for part in ("year", "month", "day", "gte", "lt")}
_TOTALS = ("requests", "cost", "cache_saved", "cache_hits", "prompt_tokens", "completion_tokens")
_EVER = (date(1970, 1, 1), date(9999, 12, 30))
_FAR = datetime(9999, 12, 30, tzinfo=UTC)


class _RollupChoices(admin.SimpleListFilter):
    """Exact-match choices of one event field, listed from the rollups' keys (the events'
    DISTINCT would read every event of the organization)."""

    field: str

    def lookups(self, request, model_admin):
        pairs = _provider_models(request)
        values = {pair[0 if self.field == "provider" else 1] for pair in pairs}
        return [(value, value) for value in sorted(values)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field: self.value()})
        return queryset


def _organization(request):
    if not hasattr(request, "_kt_events_org"):
        request._kt_events_org = request_organization(request)
    return request._kt_events_org


def _provider_models(request) -> set[tuple[str, str]]:
    """The organization's (provider, model) pairs: one query for both filters."""
    if hasattr(request, "_kt_provider_models"):
        return request._kt_provider_models
    organization = _organization(request)
    pairs = set()
    if organization is not None and rollups_in_use():
        daily, delta = (
            model.objects.filter(organization=organization)
            .order_by()
            .values_list("provider", "model")
            .distinct()
            for model in (SpendDaily, SpendDelta)
        )
        pairs = set(daily.union(delta))
    elif organization is not None:
        rows = UsageEvent.objects.filter(organization=organization).order_by()
        pairs = set(rows.values_list("provider", "model_requested").distinct())
    request._kt_provider_models = pairs
    return pairs


class ProviderFilter(_RollupChoices):
    title = "provider"
    parameter_name = "provider__exact"
    field = "provider"


class ModelFilter(_RollupChoices):
    title = "model requested"
    parameter_name = "model_requested__exact"
    field = "model_requested"


class PolicyFilter(InputFilter):
    """Typed, not listed: the distinct policies would be a scan of every event."""

    title = "routing policy (name:rule)"
    parameter_name = "policy"
    field_name = "policy"


class PriceCurrencyFilter(InputFilter):
    """Events priced in another currency and converted (docs/pricing.md); typed, not listed,
    for the same reason as the policies."""

    title = "price currency (converted)"
    parameter_name = "price_currency"
    field_name = "price_currency"

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(price_currency=self.value().strip().upper())
        return queryset


def rollup_totals(request) -> dict | None:
    """The filtered set's count and totals from the rollups, when its filters are all rollup
    keys of one rollup and the viewer sees the whole organization; else None (sum the events).
    Cached on the request: the paginator and the totals ask once."""
    if hasattr(request, "_kt_event_totals"):
        return request._kt_event_totals
    request._kt_event_totals = totals = _rollup_totals(request)
    return totals


def _rollup_totals(request) -> dict | None:
    scope = request_scope(request)
    if scope.superuser or scope.department_ids is not None or not rollups_in_use():
        return None
    params = {key: request.GET[key] for key in request.GET if key not in _PAGE_PARAMS}
    period = _period(params)
    if period is False:
        return None
    params = {key: value for key, value in params.items() if key not in _DATE_PARAMS}
    if any(key not in ROLLUP_PARAMS or not value for key, value in params.items()):
        return None
    wanted = {ROLLUP_PARAMS[key]: value for key, value in params.items()}
    if not any(set(wanted) <= fields for fields in _TABLES):
        return None
    for field in _IDS & set(wanted):
        if not wanted[field].isdigit():
            return None
        wanted[field] = int(wanted[field])
    organization = _organization(request)
    days, edges = _EVER, []
    if period is not None:
        days, edges = _whole_days(organization, *period)
    totals = dict.fromkeys(_TOTALS, 0)
    if days is not None:
        grouped = rollup_figures(
            organization=organization,
            date_from=days[0],
            date_to=days[1],
            group_by=tuple(wanted),
            department=wanted.get("department_id"),
        )
        found = grouped.get(tuple(wanted.values()), {})
        totals = {name: found.get(name, 0) for name in _TOTALS}
    if edges:
        in_edges = Q()
        for start, end in edges:
            in_edges |= Q(created_at__gte=start, created_at__lt=end)
        events = UsageEvent.objects.filter(
            in_edges,
            organization=organization,
            **{EVENT_FIELDS[field]: value for field, value in wanted.items()},
        )
        extra = event_totals(events)
        totals = {name: totals[name] + extra[name] for name in _TOTALS}
    return totals


def event_totals(events) -> dict:
    """The list's totals (_TOTALS) summed over `events`: what the rollups answer otherwise."""
    return events.order_by().aggregate(
        cache_saved=CACHE_SAVED_SUM,
        cache_hits=CACHE_HITS,
        cost=COST_SUM,
        requests=Count("id"),
        prompt_tokens=Coalesce(Sum("prompt_tokens"), 0),
        completion_tokens=Coalesce(Sum("completion_tokens"), 0),
    )


def _period(params: dict) -> tuple[datetime | None, datetime | None] | bool | None:
    """The time range of the date filters as the changelist applies them (the date hierarchy
    in the admin's time zone, as Django's ChangeList bounds it): (start, end), either open;
    None without date filters; False when they are not a plain range (then sum the events)."""
    given = {key[len("created_at__") :]: params[key] for key in _DATE_PARAMS & set(params)}
    if not given:
        return None
    try:
        if given.keys() & {"year", "month", "day"}:
            if given.keys() & {"gte", "lt"} or "year" not in given:
                return False
            month, day = given.get("month"), given.get("day")
            if day and not month:
                return False
            start = datetime(
                int(given["year"]),
                int(month or 1),
                int(day or 1),
                tzinfo=timezone.get_current_timezone(),
            )
            if day:
                end = start + timedelta(days=1)
            elif month:
                end = (start + timedelta(days=32)).replace(day=1)
            else:
                end = start.replace(year=start.year + 1)
            return start, end
        start, end = (parse_datetime(given[k]) if k in given else None for k in ("gte", "lt"))
    except (ValueError, OverflowError):
        return False
    if any(k in given and v is None for k, v in (("gte", start), ("lt", end))):
        return False
    start, end = (
        v if v is None or timezone.is_aware(v) else timezone.make_aware(v) for v in (start, end)
    )
    return start, end


def _whole_days(organization, start, end):
    """((first, last) organization days inside [start, end), or None), and the [from, to)
    ranges of the rest of it, which are less than a day at each end."""
    tz = organization.tz
    first = _EVER[0] if start is None else start.astimezone(tz).date()
    if start is not None and day_range(organization, first, first)[0] < start:
        first += timedelta(days=1)
    last = _EVER[1] if end is None else (end - timedelta(microseconds=1)).astimezone(tz).date()
    if end is not None and day_range(organization, last, last)[1] > end:
        last -= timedelta(days=1)
    if first > last:  # not one whole day: all of it from the events
        return None, [(start or datetime(1970, 1, 1, tzinfo=UTC), end or _FAR)]
    inner_start, inner_end = day_range(organization, first, last)
    edges = []
    if start is not None and start < inner_start:
        edges.append((start, inner_start))
    if end is not None and inner_end < end:
        edges.append((inner_end, end))
    return (first, last), edges


class RollupCountPaginator(Paginator):
    """A paginator whose count is given (the rollups' request count), not a COUNT(*)."""

    def __init__(self, object_list, per_page, *, count: int, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.__dict__["count"] = count
