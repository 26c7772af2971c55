"""One writer per format. A writer takes a binary file and the columns, then rows one at a time;
nothing is kept in memory but the current row (xlsx: openpyxl's write-only mode, which spools to
its own temporary file)."""

import csv
import io
import json
import shutil
import zipfile
from decimal import Decimal

from reports.exports import cells
from reports.exports.cells import Column

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _identity(value):
    return value


def _bool_text(value):
    return None if value is None else ("true" if value else "false")


def row_converter(columns: list[Column], *, decimals_as_text: bool):
    """One function that turns a row into cells for csv/xlsx, compiled from the column kinds.

    A million-row export calls it a million times, so it is one expression per row (like
    collections.namedtuple, the source is generated from trusted column indexes only; no data
    ever reaches it) instead of a loop with a function call per cell.
    """
    parts = []
    for i, column in enumerate(columns):
        v = f"r[{i}]"
        if column.kind == cells.TEXT:
            # str or None: the common case (no formula character) costs one membership test.
            parts.append(f"({v} if not {v} or {v}[0] not in F else text({v}))")
        elif column.kind == cells.JSON:
            # Canonical JSON text from the database starts with { or [: nothing to defuse.
            parts.append(f"({v} if {v}.__class__ is Raw else text({v}))")
        elif column.kind == cells.DECIMAL and decimals_as_text:
            parts.append(f"(None if {v} is None else format({v}, 'f'))")
        elif column.kind == cells.BOOL:
            parts.append(f"boolean({v})")
        else:
            parts.append(v)
    source = "lambda r: (" + ", ".join(parts) + ",)"
    namespace = {
        "F": cells.FORMULA_FIRST,
        "Raw": cells.RawJson,
        "text": cells.text_cell,
        "boolean": _bool_text,
    }
    return eval(source, namespace)  # noqa: S307 - generated from column kinds, see docstring


class CsvWriter:
    """RFC 4180: UTF-8 without BOM, header row, CRLF line ends, fields quoted only when needed."""

    def __init__(self, fileobj, columns: list[Column]):
        # Rows are formatted into a text buffer a batch at a time, then encoded in one go:
        # cheaper than a text wrapper's per-row encode over the binary file.
        self._file = fileobj
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")
        self._csv.writerow([c.name for c in columns])
        self._flush()
        self._convert = row_converter(columns, decimals_as_text=True)

    def _flush(self) -> None:
        self._file.write(self._buffer.getvalue().encode("utf-8"))
        self._buffer.seek(0)
        self._buffer.truncate()

    def write(self, row: tuple) -> None:
        self._csv.writerow(self._convert(row))
        self._flush()

    def write_many(self, rows) -> None:
        self._csv.writerows(map(self._convert, rows))
        self._flush()

    def close(self) -> None:
        self._flush()


def _json_value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, cells.RawJson):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return cells.decimal_text(value)  # a JSON number, exact, never via float
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict | list):
        return cells.json_text(value)
    return json.dumps(value, ensure_ascii=False)


class JsonlWriter:
    """One JSON object per line, keys in column order; amounts are exact JSON numbers."""

    opening = b""

    def __init__(self, fileobj, columns: list[Column]):
        self._file = fileobj
        self._keys = [json.dumps(c.name) + ":" for c in columns]
        self._first = True
        self._file.write(self.opening)

    def write(self, row: tuple) -> None:
        body = ",".join(k + _json_value(v) for k, v in zip(self._keys, row, strict=True))
        line = ("{" + body + "}").encode()
        if self.opening:
            line = (b"\n" if self._first else b",\n") + line
        else:
            line += b"\n"
        self._first = False
        self._file.write(line)

    def write_many(self, rows) -> None:
        for row in rows:
            self.write(row)

    def close(self) -> None:
        pass  # every line already ends with its newline


class JsonWriter(JsonlWriter):
    """A JSON array of the same objects, streamed."""

    opening = b"["

    def close(self) -> None:
        self._file.write(b"]\n" if self._first else b"\n]\n")


XLSX_MAX_ROWS = 1_048_576  # per sheet, header included
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FIXED_DOC_TIME = "1980-01-01T00:00:00Z"


class XlsxWriter:
    """openpyxl write-only workbook; a new sheet every 1,048,575 rows (Excel's limit).

    Numbers stay numeric cells. openpyxl stamps the current time into docProps/core.xml and the
    zip entries; `close` rewrites both to a fixed time so that the same data gives the same bytes.
    """

    def __init__(self, fileobj, columns: list[Column], title: str = "export"):
        from openpyxl import Workbook

        self._file = fileobj
        self._columns = columns
        self._title = title[:25]
        self._wb = Workbook(write_only=True)
        self._sheets = 0
        self._rows_in_sheet = 0
        self._new_sheet()
        self._convert = row_converter(columns, decimals_as_text=False)

    def _new_sheet(self) -> None:
        self._sheets += 1
        name = self._title if self._sheets == 1 else f"{self._title} ({self._sheets})"
        self._ws = self._wb.create_sheet(title=name)
        self._ws.append([c.name for c in self._columns])
        self._rows_in_sheet = 1

    def write(self, row: tuple) -> None:
        if self._rows_in_sheet >= XLSX_MAX_ROWS:
            self._new_sheet()
        self._ws.append(self._convert(row))
        self._rows_in_sheet += 1

    def write_many(self, rows) -> None:
        for row in rows:
            self.write(row)

    def close(self) -> None:
        import tempfile

        with tempfile.TemporaryFile() as raw:
            self._wb.save(raw)
            raw.seek(0)
            _rezip_fixed_time(raw, self._file)


def _rezip_fixed_time(source, target) -> None:
    """Copy an xlsx zip entry by entry with fixed timestamps (streamed, never whole in memory)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=_FIXED_ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            if info.filename == "docProps/core.xml":
                xml = zin.read(info).decode()
                xml = _fix_doc_times(xml)
                zout.writestr(fixed, xml.encode())
                continue
            with zin.open(info) as src, zout.open(fixed, "w") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)


def _fix_doc_times(xml: str) -> str:
    import re

    return re.sub(
        r"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
        lambda m: m.group(1) + _FIXED_DOC_TIME + m.group(2),
        xml,
    )


WRITERS = {"csv": CsvWriter, "jsonl": JsonlWriter, "json": JsonWriter, "xlsx": XlsxWriter}


def writer_for(fmt: str, fileobj, columns: list[Column], title: str):
    if fmt == "xlsx":
        return XlsxWriter(fileobj, columns, title=title)
    return WRITERS[fmt](fileobj, columns)
