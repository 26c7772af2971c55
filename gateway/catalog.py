"""Loads a pricing catalog file (gateway/data/prices.yaml format) into the Price table.

Rules (docs/pricing.md): loading is idempotent; a price is never edited once an event used it.
A new price for a model is a new entry with a later `effective_from`: the row in force is closed
at that instant (`effective_to`) and a new open row starts there, so events keep the price of
their own time.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml
from django.db import transaction

from chargeback.errors import ApplicationError
from chargeback.money import CURRENCIES, PRICE_PLACES

DEFAULT_CATALOG = Path(__file__).resolve().parent / "data" / "prices.yaml"

# Catalog key -> Price field. Values compared to decide "same price" or "changed price".
_VALUE_FIELDS = {
    "kind": "kind",
    "input": "input_per_mtok",
    "output": "output_per_mtok",
    "cached_input": "cached_input_per_mtok",
    "cache_write": "cache_write_per_mtok",
    "max_output_tokens": "max_output_tokens",
    "context_window": "context_window",
    "currency": "currency",
    "premium": "premium",
}
_PRICE_KEYS = ("input", "output", "cached_input", "cache_write")
_KNOWN_KEYS = {"provider", "model", "effective_from", *_VALUE_FIELDS}
_KINDS = ("chat", "embedding")
_PRICE_QUANTUM = Decimal(1).scaleb(-PRICE_PLACES)


class _DecimalLoader(yaml.SafeLoader):
    """YAML numbers with a fraction become Decimals, read from their text: never via float."""


_DecimalLoader.add_constructor(
    "tag:yaml.org,2002:float", lambda loader, node: Decimal(loader.construct_scalar(node))
)


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.closed or self.corrected)


def _when(value, where: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time.min, tzinfo=UTC)
    if isinstance(value, str):
        try:
            return _when(datetime.fromisoformat(value), where)
        except ValueError:
            pass
    raise ApplicationError(f"{where}.effective_from: expected an ISO date or datetime")


def _price(value, where: str) -> Decimal:
    try:
        amount = Decimal(str(value)) if not isinstance(value, bool) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0:
        raise ApplicationError(f"{where}: expected a price >= 0")
    if amount.quantize(_PRICE_QUANTUM) != amount:
        raise ApplicationError(f"{where}: at most {PRICE_PLACES} decimal places")
    return amount


def _count(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApplicationError(f"{where}: expected a whole number >= 0")
    return value


def catalog_parse(*, text: str) -> list[dict]:
    """Validated catalog entries as Price field values. Raises ApplicationError naming the entry."""
    try:
        data = yaml.load(text, Loader=_DecimalLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ApplicationError(f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("prices"), list):
        raise ApplicationError("the catalog needs a top-level `prices:` list")
    currency = data.get("currency", "USD")
    entries, seen = [], set()
    for i, raw in enumerate(data["prices"]):
        where = f"prices[{i}]"
        if not isinstance(raw, dict):
            raise ApplicationError(f"{where}: expected a mapping")
        unknown = set(raw) - _KNOWN_KEYS
        if unknown:
            raise ApplicationError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        for key in ("provider", "model", "input", "effective_from"):
            if raw.get(key) in (None, ""):
                raise ApplicationError(f"{where}.{key}: required")
        where = f"{where} ({raw['provider']}/{raw['model']})"
        kind = raw.get("kind", "chat")
        if kind not in _KINDS:
            raise ApplicationError(f"{where}.kind: one of {', '.join(_KINDS)}")
        entry_currency = raw.get("currency", currency)
        if entry_currency not in CURRENCIES:
            raise ApplicationError(f"{where}.currency: unknown currency {entry_currency!r}")
        entry = {
            "provider": str(raw["provider"]),
            "model": str(raw["model"]),
            "effective_from": _when(raw["effective_from"], where),
            "kind": kind,
            "currency": entry_currency,
            "premium": bool(raw.get("premium", False)),
            "max_output_tokens": _count(raw.get("max_output_tokens", 4096), where),
            "context_window": _count(raw.get("context_window", 128_000), where),
        }
        for key in _PRICE_KEYS:
            value = raw.get(key, 0 if key == "output" else None)
            entry[_VALUE_FIELDS[key]] = None if value is None else _price(value, f"{where}.{key}")
        identity = (entry["provider"], entry["model"], entry["effective_from"])
        if identity in seen:
            raise ApplicationError(f"{where}: the same model twice with one effective_from")
        seen.add(identity)
        entries.append(entry)
    return entries


def _same(row, entry: dict) -> bool:
    return all(getattr(row, name) == entry[name] for name in _VALUE_FIELDS.values())


def catalog_load(
    *, path: Path | str = DEFAULT_CATALOG, organization_id: int | None = None, price_model=None
) -> LoadReport:
    """Load a catalog file; all or nothing (one transaction). Returns what changed.

    Idempotent: loading the same file twice changes nothing. For each provider/model, an entry
    later than the newest row closes the row in force at its `effective_from` and opens a new one
    (unless the price is identical, then it is already in force). An entry with the
    `effective_from` of an existing row must match it; it may correct the row only while no usage
    event references it. Older entries that are not in the database are refused: history is
    never rewritten. `price_model` lets a data migration pass its historical model.
    """
    if price_model is None:
        from gateway.models import Price as price_model
    entries = catalog_parse(text=Path(path).read_text(encoding="utf-8"))
    report = LoadReport()
    by_model: dict[tuple[str, str], list[dict]] = {}
    for entry in entries:
        by_model.setdefault((entry["provider"], entry["model"]), []).append(entry)
    with transaction.atomic():
        for (provider, model), model_entries in by_model.items():
            rows = list(
                price_model.objects.select_for_update()
                .filter(organization_id=organization_id, provider=provider, model=model)
                .order_by("effective_from")
            )
            for entry in sorted(model_entries, key=lambda e: e["effective_from"]):
                _load_entry(price_model, rows, entry, organization_id, report)
    return report


def _load_entry(price_model, rows: list, entry: dict, organization_id, report: LoadReport):
    label = f"{entry['provider']}/{entry['model']} from {entry['effective_from']:%Y-%m-%d %H:%M}"
    start = entry["effective_from"]
    match = next((row for row in rows if row.effective_from == start), None)
    if match is not None:
        if _same(match, entry):
            report.unchanged += 1
            return
        # Through the model's own registry: a data migration passes its historical Price.
        usage_event = price_model._meta.apps.get_model("gateway", "UsageEvent")
        if usage_event.objects.filter(price_id=match.pk).exists():
            raise ApplicationError(
                f"{label}: this price was already used by usage events and cannot be edited; "
                "add an entry with a later effective_from instead"
            )
        for _key, name in _VALUE_FIELDS.items():
            setattr(match, name, entry[name])
        match.save(update_fields=list(_VALUE_FIELDS.values()))
        report.corrected.append(label)
        return
    latest = rows[-1] if rows else None
    if latest is not None and start < latest.effective_from:
        raise ApplicationError(
            f"{label}: earlier than the newest price in the database "
            f"({latest.effective_from:%Y-%m-%d %H:%M}); history is never rewritten"
        )
    in_force = (
        latest
        if latest is not None and (latest.effective_to is None or latest.effective_to > start)
        else None
    )
    if in_force is not None and _same(in_force, entry):
        report.unchanged += 1  # the same price restated with a later date: already in force
        return
    values = {name: entry[name] for name in _VALUE_FIELDS.values()}
    new = price_model(
        organization_id=organization_id,
        provider=entry["provider"],
        model=entry["model"],
        effective_from=start,
        effective_to=in_force.effective_to if in_force is not None else None,
        **values,
    )
    if in_force is not None:
        from gateway.prices import price_close  # models imported late: migrations use this

        price_close(in_force, at=start)
        report.closed.append(label)
    new.save()
    rows.append(new)
    report.created.append(label)
