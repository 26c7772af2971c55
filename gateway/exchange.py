"""Exchange rates: the one in force for a pair at an instant (cached: the gateway converts
without a query per request), and the one write that adds a rate (API, admin, import).

A rate is read as "1 `from_currency` = `rate` `to_currency`", effective from `effective_from`
until the pair's next row. An organization's own rows win over the shared table (rows with no
organization) as soon as one of them is in force; before that the shared table applies. Only
the direct pair is used (no inverse, no cross rates): what converts is what finance entered.
Rows are never edited: a new rate is a new row from its instant, so a rate change mid-month
applies to later requests only, and every event keeps the rate it was converted at.
"""

from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from chargeback.audit import audit_record
from chargeback.errors import collect_errors
from chargeback.models import Organization
from chargeback.money import CURRENCIES, rate_problem
from gateway.cache import TTLCache
from gateway.models import ExchangeRate

# (organization id, from, to) -> [(effective_from, rate, is_own)], newest first, kept in
# process like prices (KT_PRICE_CACHE_SECONDS); a save in this process clears it.
_cache = TTLCache(ttl_setting="KT_PRICE_CACHE_SECONDS")


def rate_cache_clear(**_signal_kwargs) -> None:
    _cache.clear()


def _rows(organization_id: int | None, source: str, target: str):
    return _cache.get(
        (organization_id, source, target),
        lambda: [
            (start, rate, org_id is not None)
            for start, rate, org_id in ExchangeRate.objects.filter(
                Q(organization_id=organization_id) | Q(organization__isnull=True),
                from_currency=source,
                to_currency=target,
            )
            .order_by(F("organization_id").asc(nulls_last=True), "-effective_from")
            .values_list("effective_from", "rate", "organization_id")
        ],
    )


def rate_for(
    *, organization_id: int | None, source: str, target: str, at: datetime
) -> Decimal | None:
    """Units of `target` per unit of `source` in force at `at` (1 for the same currency);
    None when no rate is. The organization's own rows first, newest first, then the shared."""
    if source == target:
        return Decimal(1)
    for start, rate, _own in _rows(organization_id, source, target):
        if start <= at:
            return rate
    return None


def exchange_rates_of(*, organization: Organization):
    """The rates an organization converts with: its own and the shared table's."""
    return ExchangeRate.objects.filter(
        Q(organization=organization) | Q(organization__isnull=True)
    ).order_by("from_currency", "to_currency", "-effective_from", "-id")


def exchange_rate_create(
    *,
    organization: Organization | None,
    from_currency: str,
    to_currency: str,
    rate: Decimal,
    effective_from: datetime | None = None,
    actor: str,
    via: str,
) -> ExchangeRate:
    """Add a rate (`organization=None`: the shared table). ValidationFailed naming each field;
    a second rate for the same pair and instant is refused (add a later one instead)."""
    effective_from = effective_from or timezone.now()
    errors = collect_errors()
    for field, value in (("from_currency", from_currency), ("to_currency", to_currency)):
        if value not in CURRENCIES:
            errors.add(field, f"unknown currency {value!r}")
    if from_currency == to_currency:
        errors.add("to_currency", "must differ from from_currency")
    if (problem := rate_problem(rate)) is not None:
        errors.add("rate", problem)
    errors.raise_if_any()
    row = ExchangeRate(
        organization=organization,
        from_currency=from_currency,
        to_currency=to_currency,
        rate=rate,
        effective_from=effective_from,
    )
    duplicate = ExchangeRate.objects.filter(
        organization=organization,
        from_currency=from_currency,
        to_currency=to_currency,
        effective_from=effective_from,
    )
    if duplicate.exists():
        errors.add("effective_from", "a rate for this pair already starts at this instant")
        errors.raise_if_any()
    try:
        with transaction.atomic():
            row.save()
            audit_record(
                organization=organization,
                actor=actor,
                via=via,
                action="exchange_rate.create",
                obj=row,
                after={
                    "from_currency": from_currency,
                    "to_currency": to_currency,
                    "rate": rate,
                    "effective_from": effective_from,
                },
            )
    except IntegrityError:  # the same row added concurrently
        errors.add("effective_from", "a rate for this pair already starts at this instant")
        errors.raise_if_any()
    return row


post_save.connect(rate_cache_clear, sender=ExchangeRate, dispatch_uid="gateway.exchange.cache")
post_delete.connect(
    rate_cache_clear, sender=ExchangeRate, dispatch_uid="gateway.exchange.cache_del"
)
