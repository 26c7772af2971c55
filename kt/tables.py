"""How `kt` prints numbers and tables for people: the server's chargeback/display.py rules
(kt imports nothing of the server). Amounts arrive as the API's exact decimal strings and keep
their digits (never through a float, never an exponent), thousands separated; counts too."""

from decimal import Decimal, InvalidOperation


def amount(value) -> str:
    """'28000.00' -> '28,000.00', '0.000123' -> '0.000123', '-1234.5' -> '-1,234.50'."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not number.is_finite():
        return str(value)
    places = max(2, -number.normalize().as_tuple().exponent) if number else 2
    text = f"{number:,.{places}f}"
    return text[1:] if text.startswith("-") and not number else text


def count(value) -> str:
    """1234567 -> '1,234,567'."""
    return "" if value is None else f"{int(value):,}"


def table(headers, rows, right=()) -> str:
    """A plain text table; the columns in `right` (numbers) right-aligned, amounts aligned on
    the decimal point."""
    if not rows:
        return "(none)"
    rows = [["" if c is None else str(c) for c in row] for row in rows]
    for i in right:
        places = max(len(row[i].partition(".")[2]) for row in rows)
        for row in rows:
            row[i] += " " * (places - len(row[i].partition(".")[2]))
    widths = [max(len(c) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def pairs(rows) -> str:
    """Label / value lines, the labels padded to one width."""
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {'' if value is None else value}" for label, value in rows)
