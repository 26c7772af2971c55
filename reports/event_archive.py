"""Archive a month of usage events (PostgreSQL, partitioned by month: gateway/partitions.py):
export its partition to a gzip CSV the finance team can open, check the file against the
partition to the last decimal, then detach and drop the partition (docs/operations.md
"Usage events by month").

The dashboards, budgets and spend API read the daily rollups, which keep the month: detaching
a partition fires no delete trigger. Raw-event pages and exports for an archived month come
from the archive file instead. A month is refused while its rollups differ from its events (a
rebuild could not restore them once the events are gone), or when it is newer than
KT_EVENT_ARCHIVE_MIN_MONTHS.
"""

import csv
import gzip
import hashlib
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from gateway.models import EventArchive, UsageEvent
from gateway.partitions import (
    GUARD,
    PARENT,
    month_bounds,
    month_partitions,
    month_start,
    partition_name,
    partitioned,
    previous_month,
)
from gateway.rollups import rollups_fold
from reports.exports.cells import iso_utc
from reports.exports.rows.events import FIELDS
from reports.exports.rows.events import columns as events_columns
from reports.exports.writers import CsvWriter

__all__ = ["ArchiveRefused", "ArchiveResult", "events_archive_month"]

CHUNK = 5000


class ArchiveRefused(Exception):
    """The month cannot be archived (the message says why); nothing was changed."""


@dataclass(frozen=True)
class ArchiveResult:
    partition: str
    path: Path
    rows: int
    costs: dict[str, Decimal]  # summed cost per currency, as in the file and the partition
    sha256: str


def events_archive_month(
    *, month: datetime, directory: Path | None = None, now: datetime | None = None
) -> ArchiveResult:
    """Export the month's partition to `events-YYYY-MM.csv.gz` in `directory`
    (KT_EVENT_ARCHIVE_DIR), then detach and drop it. Refused (ArchiveRefused, nothing changed)
    unless the file read back has exactly the partition's rows and cost sums per currency.

    Locks: the export reads the partition without locking writers out; the detach takes an
    ACCESS EXCLUSIVE lock on the events table for the few milliseconds of the catalog change
    (`DETACH ... CONCURRENTLY` is not allowed while a default partition exists).
    """
    if not partitioned():
        raise ArchiveRefused("usage events are not partitioned here (PostgreSQL only)")
    month = month_start(month)
    name = partition_name(month)
    if month not in month_partitions():
        raise ArchiveRefused(f"no partition {name} (archived already, or never created)")
    newest = month_start(now or timezone.now())
    for _ in range(settings.KT_EVENT_ARCHIVE_MIN_MONTHS):
        newest = previous_month(newest)
    if month > newest:
        raise ArchiveRefused(
            f"{month:%Y-%m} is newer than KT_EVENT_ARCHIVE_MIN_MONTHS"
            f" ({settings.KT_EVENT_ARCHIVE_MIN_MONTHS}) months: the oldest archivable is {newest:%Y-%m}"
        )
    rollups_fold()
    if differing := _rollup_days_differing(name, month):
        raise ArchiveRefused(
            f"{month:%Y-%m}: the rollups of {differing} day(s) differ from the events;"
            " run `manage.py spend_rollups_rebuild` first"
        )
    directory = Path(directory or settings.KT_EVENT_ARCHIVE_DIR)
    if not directory.is_absolute():
        directory = settings.BASE_DIR / directory
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"events-{month:%Y-%m}.csv.gz"
    _export(month, path)
    rows, costs = _read_back(path)
    in_db = _partition_sums(name)
    if (rows, costs) != in_db:
        path.unlink()
        raise ArchiveRefused(
            f"{path.name} does not match {name}: file {rows} rows {costs}, partition {in_db}"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest = {"partition": name, "rows": rows, "cost": {k: str(v) for k, v in costs.items()}}
    _write_synced(
        path.with_suffix("").with_suffix(".json"), json.dumps(manifest | {"sha256": digest})
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {name}")
        # Detached, nothing writes to it any more: a write since the export refuses (and undoes
        # the detach). A month this old is not written to; an event dated in it from now on
        # lands in the default partition (and `events_partitions` makes the month again).
        if _partition_sums(name) != in_db:
            raise ArchiveRefused(f"{name} was written to during the export: try again")
        # The request ids of a month this old cannot come back: the guard forgets them.
        cursor.execute(
            f"DELETE FROM {GUARD} WHERE request_id IN (SELECT request_id FROM {name})"  # noqa: S608
        )
        cursor.execute(f"DROP TABLE {name}")
        EventArchive.objects.create(
            month=month.date(),
            path=str(path),
            sha256=digest,
            rows=rows,
            costs={k: str(v) for k, v in costs.items()},
        )
    return ArchiveResult(name, path, rows, costs, digest)


def _rollup_days_differing(name: str, month: datetime) -> int:
    """The organizations' local days inside the month (a day that straddles its UTC start or
    end is shared with the next partition and not compared) whose rollups' requests or cost
    differ from the events."""
    start, end = month_bounds(month)
    sql = f"""
        WITH days AS (
            SELECT DISTINCT e.organization_id, o.time_zone,
                   (e.created_at AT TIME ZONE o.time_zone)::date AS day
            FROM {name} e JOIN chargeback_organization o ON o.id = e.organization_id
        ), inside AS (
            SELECT organization_id, day, day::timestamp AT TIME ZONE time_zone AS d0,
                   (day + 1)::timestamp AT TIME ZONE time_zone AS d1
            FROM days
        ), raw AS (
            SELECT i.organization_id, i.day, count(*) AS n, sum(e.cost) AS cost
            FROM inside i JOIN {name} e ON e.organization_id = i.organization_id
                AND e.created_at >= i.d0 AND e.created_at < i.d1
            WHERE i.d0 >= %(start)s AND i.d1 <= %(end)s
            GROUP BY 1, 2
        ), rolled AS (
            SELECT s.organization_id, s.day, sum(s.requests) AS n, sum(s.cost) AS cost
            FROM gateway_spenddaily s JOIN inside i USING (organization_id, day)
            WHERE i.d0 >= %(start)s AND i.d1 <= %(end)s
            GROUP BY 1, 2
        )
        SELECT count(*) FROM raw FULL JOIN rolled USING (organization_id, day)
        WHERE raw.n IS DISTINCT FROM rolled.n OR raw.cost IS DISTINCT FROM rolled.cost
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, {"start": start, "end": end})
        return cursor.fetchone()[0]


def _export(month: datetime, path: Path) -> None:
    """The events export's columns (reports/exports/rows/events.py), every organization, written
    by the exports' own CSV writer (the same cells as a CSV export: plain decimals, canonical
    JSON, formulas defused)."""
    start, end = month_bounds(month)
    columns = events_columns(None)
    fields = [f or ("organization__slug" if n == "organization" else None) for n, _, f, _ in FIELDS]
    query = [f.replace("tags_text", "tags") for f in fields if f]
    events = (
        UsageEvent.objects.filter(created_at__gte=start, created_at__lt=end)
        .order_by("created_at", "id")
        .values_list(*query)
        .iterator(chunk_size=CHUNK)
    )
    tmp = path.with_suffix(".partial")
    with gzip.open(tmp, "wb") as out:
        writer = CsvWriter(out, columns)
        for values in events:
            row = dict(zip([f for f in fields if f], values, strict=True))
            writer.write(
                tuple(_value(c.name, f, row) for c, f in zip(columns, fields, strict=True))
            )
        writer.close()
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def _value(name: str, field: str | None, row: dict):
    if name == "total_tokens":
        return row["prompt_tokens"] + row["completion_tokens"]
    value = row[field]
    return iso_utc(value) if isinstance(value, datetime) else value


def _read_back(path: Path) -> tuple[int, dict[str, Decimal]]:
    rows, costs = 0, defaultdict(Decimal)
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows += 1
            costs[row["currency"]] += Decimal(row["cost"])
    return rows, dict(costs)


def _partition_sums(name: str) -> tuple[int, dict[str, Decimal]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT currency, count(*), sum(cost) FROM {name} GROUP BY 1")  # noqa: S608
        found = cursor.fetchall()
    counts = Counter({currency: n for currency, n, _ in found})
    return sum(counts.values()), {currency: cost for currency, _, cost in found}


def _write_synced(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
