"""How values become cells, the same way in every format.

Row builders yield plain Python values: str, int, bool, Decimal, dict/list (JSON) or None.
Numbers stay numbers (a negative variance is `-12.34`, not text); only text cells that a
spreadsheet would run as a formula are neutralised, by prefixing a single quote (OWASP CSV
injection advice). JSON formats are read by programs, not spreadsheets, and carry raw text.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

TEXT = "text"
INT = "int"
DECIMAL = "decimal"
BOOL = "bool"
JSON = "json"
DATETIME = "datetime"
DATE = "date"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = TEXT
    description: str = ""


def neutralise(value: str) -> str:
    """'=1+2' -> "'=1+2": shown as text by Excel, LibreOffice and Google Sheets."""
    if value and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def json_text(value) -> str:
    """Compact JSON with sorted keys, so that the same data gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def decimal_text(value: Decimal) -> str:
    """Plain notation at the stored precision: never `0E-8`."""
    return format(value, "f")


def iso_utc(value: datetime) -> str:
    """`2026-05-31T21:30:00.000000Z`: one fixed shape, always UTC, always microseconds."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[: 19 + 7] + "Z"


class RawJson(str):
    """JSON already in canonical form (compact, sorted keys): written as is by every writer."""

    __slots__ = ()


class JsonCanon:
    """Canonical JSON for values read as database text, cached by that text: tags repeat a lot,
    and parsing then re-dumping each one would dominate a million-row export."""

    def __init__(self, limit: int = 10_000):
        self._cache: dict[str, RawJson] = {}
        self._limit = limit

    def __call__(self, text: str | None) -> RawJson | None:
        if text is None:
            return None
        canon = self._cache.get(text)
        if canon is None:
            canon = RawJson(json_text(json.loads(text)))
            if len(self._cache) < self._limit:
                self._cache[text] = canon
        return canon


def text_cell(value):
    """Text for csv/xlsx: None stays empty, JSON becomes compact text, formulas are defused."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        return neutralise(json_text(value))
    return neutralise(str(value))


FORMULA_FIRST = frozenset(FORMULA_PREFIXES)
