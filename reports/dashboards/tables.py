"""A dashboard table: the same rows feed the HTML page and the CSV download."""

from dataclasses import dataclass, field
from datetime import date

from chargeback import display


@dataclass
class Column:
    key: str
    title: str
    kind: str = "text"  # text, money, int, percent
    html: bool = True  # False: in the CSV download only


@dataclass
class Table:
    name: str  # the ?table= value of its CSV download
    title: str
    columns: list[Column]
    rows: list[dict] = field(default_factory=list)
    footer: dict | None = None
    collapsed: bool = False  # long tables start folded on the page


def money(value) -> str:
    return f"${display.money(value)}"


def month_label(month: date) -> str:
    return month.strftime("%B %Y")
