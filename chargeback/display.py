"""How money and counts read for people: the admin, the dashboards and the e-mails (the `kt`
command line, which imports nothing of the server, follows the same rules in kt/tables.py).

- Totals (spend, budgets, balances, allocations) are shown to the cent, rounded once with the
  one rule (money.to_cents), thousands separated: 28,000.00.
- A single event's or ledger entry's amount keeps every stored digit when it is not whole cents,
  because one call can cost a fraction of a cent: 0.00000004, 1,234.567891 (`amount`).
- Counts (requests, tokens) are thousands separated: 1,234,567.
- Never an exponent (Decimal's str of 0E-8 or -4E-8), never a float, never "-0.00".
Machine outputs (API JSON, CSV and JSON files, response headers) keep plain digits without
separators: money.exact_str and money.to_cents.
"""

from decimal import Decimal

from chargeback.money import to_cents

DASH = "\u2013"  # an empty cell


def _plain(value: Decimal, places: int) -> str:
    text = f"{value:,.{places}f}"
    # -0.00 (a negative amount below half a cent) reads as a sign error: it is zero.
    return (
        text[1:]
        if text.startswith("-") and not value.quantize(Decimal(1).scaleb(-places))
        else text
    )


def money(value, currency: str = "") -> str:
    """A total to the cent: "28,000.00" (with `currency`: "28,000.00 USD")."""
    if value is None:
        return DASH
    text = _plain(to_cents(value), 2)
    return f"{text} {currency}" if currency else text


def amount(value, currency: str = "") -> str:
    """One event's or entry's amount: whole cents as "12.30", else every stored digit
    ("0.00000004", "-1,234.567891"); never an exponent."""
    if value is None:
        return DASH
    value = Decimal(value)
    places = max(2, -value.normalize().as_tuple().exponent) if value else 2
    text = _plain(value, places)
    return f"{text} {currency}" if currency else text


def count(value) -> str:
    """A number of requests or tokens: "1,234,567"."""
    return f"{int(value or 0):,}"


def percent(value, places: int = 1) -> str:
    """A percentage already in percent: 87.14 -> "87.1 %"."""
    if value is None:
        return DASH
    return f"{Decimal(value):.{places}f} %"


def emails(addresses) -> str:
    """A list of e-mail addresses as people write them: "a@x.example, b@x.example"."""
    return ", ".join(addresses or []) or DASH


def thresholds(values) -> str:
    """Alert thresholds in percent: "50, 80, 100 %"."""
    return f"{', '.join(str(v) for v in values)} %" if values else DASH
