"""CSV downloads of dashboard tables: the same rows the page shows, spreadsheet-safe."""

import csv
from decimal import Decimal

from django.http import HttpResponse

# A cell starting with one of these runs as a formula in Excel/LibreOffice/Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value) -> str:
    """Text a spreadsheet shows as text: formula-like strings get a leading apostrophe.
    Numbers are written as plain numbers (a negative amount is not a formula)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def cell(value, kind: str) -> str:
    if kind == "percent" and value is not None:
        return str((Decimal(value) * 100).quantize(Decimal("0.1")))
    return neutralise(value)


def table_csv_response(table, *, filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(
        [neutralise(c.title + (" (%)" if c.kind == "percent" else "")) for c in table.columns]
    )
    for row in table.rows:
        writer.writerow([cell(row.get(c.key), c.kind) for c in table.columns])
    return response
