"""The usage events admin without reading a year of events for its frame: the provider and model
filter choices, the result count and the totals above the list come from the daily rollups
(gateway/rollups.py) whenever the active filters are rollup keys (department, consumer group,
provider, model, end user; none at all). The list itself is one page of events by the
organization's time index. Other filters (dates, status, policy, search) count and total the
filtered events, which those filters narrow by index."""

from datetime import date

from django.contrib import admin
from django.core.paginator import Paginator

from chargeback.admin_base import InputFilter
from chargeback.admin_scope import request_organization, request_scope
from gateway.models import UsageEvent
from gateway.rollup_models import SpendDaily, SpendDelta
from gateway.rollups import rollup_figures, rollups_in_use

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
_EVER = (date(1970, 1, 1), date(9999, 12, 30))


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
    grouped = rollup_figures(
        organization=organization,
        date_from=_EVER[0],
        date_to=_EVER[1],
        group_by=tuple(wanted),
        department=wanted.get("department_id"),
    )
    key = tuple(wanted.values())
    found = grouped.get(key)
    if found is None:
        return {"requests": 0, "cost": 0, "cache_saved": 0, "cache_hits": 0}
    return found


class RollupCountPaginator(Paginator):
    """A paginator whose count is given (the rollups' request count), not a COUNT(*)."""

    def __init__(self, object_list, per_page, *, count: int, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.__dict__["count"] = count
