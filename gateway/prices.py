"""Price writes: the admin, its import and the catalog loader all go through these.

A price an event was billed at is never rewritten: changing it closes its row (`effective_to`)
and opens a new row with the new terms from the same instant, so every past event keeps
pointing at the terms it was charged. An unused row is edited in place. One action name per
operation in the audit log: `price.create`, `price.update` (its `after` says when a new row was
opened), `price.delete`.
"""

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from chargeback.audit import audit_record, audited_delete
from chargeback.errors import ApplicationError, collect_errors
from chargeback.models import Organization
from chargeback.money import CURRENCIES, PRICE_PLACES
from gateway.models import Price, UsageEvent

# What a price *is*; `effective_to` alone may be set in place (closing a row keeps history).
TERMS = (
    "provider",
    "model",
    "kind",
    "input_per_mtok",
    "output_per_mtok",
    "cached_input_per_mtok",
    "cache_write_per_mtok",
    "max_output_tokens",
    "context_window",
    "currency",
    "premium",
    "effective_from",
)
_PER_MTOK = ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok")
_QUANTUM = Decimal(1).scaleb(-PRICE_PLACES)


def price_is_used(price: Price) -> bool:
    return UsageEvent.objects.filter(price_id=price.pk).exists()


def price_check(price: Price) -> None:
    """Every rule a price row obeys: ValidationFailed naming each field."""
    errors = collect_errors()
    for field in ("provider", "model"):
        if not str(getattr(price, field) or "").strip():
            errors.add(field, "must not be empty")
    if price.kind not in Price.Kind.values:
        errors.add("kind", f"one of {', '.join(Price.Kind.values)}")
    for field in _PER_MTOK:
        value = getattr(price, field)
        if value is None and field in ("input_per_mtok", "output_per_mtok"):
            errors.add(field, "required")
        elif value is not None and (value < 0 or value.quantize(_QUANTUM) != value):
            errors.add(field, f"a price of 0 or more with at most {PRICE_PLACES} decimal places")
    for field in ("max_output_tokens", "context_window"):
        if not isinstance(getattr(price, field), int) or getattr(price, field) < 1:
            errors.add(field, "a whole number of tokens, 1 or more")
    if price.currency not in CURRENCIES:
        errors.add("currency", f"unknown currency {price.currency!r}")
    if price.effective_from is None:
        errors.add("effective_from", "required")
    elif price.effective_to is not None and price.effective_to <= price.effective_from:
        errors.add("effective_to", "must be after effective_from")
    errors.raise_if_any()


def _state(price: Price) -> dict:
    return {field: getattr(price, field) for field in (*TERMS, "effective_to")}


def price_create(*, organization: Organization | None, actor: str, via: str, **terms) -> Price:
    """A new price row (`organization=None`: the shared default catalog)."""
    terms.setdefault("effective_from", timezone.now())
    price = Price(organization=organization, **terms)
    price_check(price)
    with transaction.atomic():
        price.save()
        price.refresh_from_db()
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="price.create",
            obj=price,
            after=_state(price),
        )
    return price


def price_update(*, price: Price, actor: str, via: str, **changes) -> Price:
    """Change a price's terms (and/or close it with `effective_to`). Used by an event: the row
    is closed now and a new one with the new terms opens now (returned). Unused: edited in
    place. No change: nothing written."""
    unknown = set(changes) - {*TERMS, "effective_to"}
    if unknown:
        raise ApplicationError(f"cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        current = Price.objects.select_for_update().get(pk=price.pk)
        before = _state(current)
        changed = [f for f, v in changes.items() if before[f] != v]
        if not changed:
            return current
        terms_changed = [f for f in changed if f in TERMS]
        if terms_changed and price_is_used(current):
            return _close_and_open(current, changes, before, actor=actor, via=via)
        for field in changed:
            setattr(current, field, changes[field])
        price_check(current)
        current.save(update_fields=changed)
        current.refresh_from_db(fields=changed)  # the audit row shows stored values (6 places)
        audit_record(
            organization=current.organization,
            actor=actor,
            via=via,
            action="price.update",
            obj=current,
            before={f: before[f] for f in changed},
            after={f: getattr(current, f) for f in changed},
        )
        return current


def _close_and_open(current: Price, changes: dict, before: dict, *, actor, via) -> Price:
    now = timezone.now()
    wanted_to = changes.get("effective_to", current.effective_to)
    new = Price(
        organization_id=current.organization_id,
        **{f: changes.get(f, before[f]) for f in TERMS},
    )
    new.effective_from = now
    new.effective_to = wanted_to if wanted_to is not None and wanted_to > now else None
    price_check(new)
    price_close(current, at=now)
    new.save()
    new.refresh_from_db()
    audit_record(
        organization=current.organization,
        actor=actor,
        via=via,
        action="price.update",
        obj=new,
        before={"price": current.pk, **before},
        after={"closed_price": current.pk, **_state(new)},
    )
    return new


def price_close(price: Price, *, at: datetime) -> None:
    """End a row's period at `at`: the one change allowed on a price an event used."""
    price.effective_to = at
    price.save(update_fields=["effective_to"])


def price_delete(*, price: Price, actor: str, via: str) -> None:
    """Delete a price no event was billed at; a used price can only be closed."""
    if price_is_used(price):
        raise ApplicationError(
            "this price was billed to usage events: set its effective_to instead of deleting it",
            field="effective_to",
        )
    audited_delete(price, actor=actor, via=via, action="price.delete", before=_state(price))
