"""Row builders, one module per export type. Each module has:

- `columns(ctx) -> list[Column]`
- `count(ctx) -> int`: rows expected (for the progress bar)
- `rows(ctx, totals) -> Iterator[tuple]`: the rows in a stable order; adds to `totals`
  (a Totals) as it goes, so the manifest's totals are the file's own totals.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from chargeback.models import Department, Organization
from chargeback.money import ZERO, quantize, to_cents

# Rows fetched per round trip: large enough to be fast, small enough to keep memory flat.
CHUNK_SIZE = 5000


@dataclass
class ExportContext:
    organization: Organization
    date_from: date
    date_to: date
    start: datetime  # inclusive, in UTC terms: the first instant of date_from, local time
    end: datetime  # exclusive: the first instant after date_to, local time
    filters: dict
    department: Department | None = None


@dataclass
class Totals:
    """Sums per currency at full precision; rounded once (to cents) for the manifest."""

    amounts: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(lambda: ZERO)))
    counts: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    # (name, minuend, subtrahend): shown as the difference of the two rounded totals, the way
    # each row shows it, so that the figures a person adds up agree to the cent.
    differences: list = field(default_factory=list)

    def add(self, currency: str, name: str, amount: Decimal) -> None:
        self.amounts[currency][name] += amount

    def count(self, currency: str, name: str, n: int) -> None:
        self.counts[currency][name] += n

    def as_manifest(self) -> dict:
        out = {}
        for currency in sorted(set(self.amounts) | set(self.counts)):
            entry = {}
            for name, value in sorted(self.amounts.get(currency, {}).items()):
                entry[name] = str(to_cents(value))
                entry[f"{name}_exact"] = format(quantize(value), "f")  # same shape on any DB
            for name, a, b in self.differences:
                entry[name] = str(
                    to_cents(entry_exact(self, currency, a))
                    - to_cents(entry_exact(self, currency, b))
                )
            for name, value in sorted(self.counts.get(currency, {}).items()):
                entry[name] = value
            out[currency] = entry
        return out


def utc_text(field: str):
    """An expression giving `field` as cells.iso_utc text, computed by PostgreSQL: parsing a
    timestamp into a datetime and formatting it again is a quarter of a big export's CPU.
    None on other databases (the row builder formats in Python then)."""
    from django.db import connection
    from django.db.models import CharField, F, Func

    if connection.vendor != "postgresql":
        return None
    return Func(
        F(field),
        template="""to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
        output_field=CharField(),
    )


def entry_exact(totals: Totals, currency: str, name: str) -> Decimal:
    return totals.amounts.get(currency, {}).get(name, ZERO)


def builder_for(export_type: str):
    from reports.exports.rows import audit_log, chargeback, events, focus

    return {
        "events": events,
        "chargeback": chargeback,
        "focus": focus,
        "audit-log": audit_log,
    }[export_type]
