"""The month partitions of the usage events (PostgreSQL; gateway migration 0014 and
docs/operations.md "Usage events by month"). One partition per calendar month in UTC,
`gateway_usageevent_pYYYY_MM`, and `gateway_usageevent_default` for anything else, so an insert
never fails for want of a partition. SQLite keeps a plain table: everything here is a no-op.

`partitions_ensure` creates the months ahead (daily beat task, `manage.py events_partitions`)
and moves the rows that landed in the default partition into their month's new partition.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

__all__ = [
    "PARENT",
    "EnsureResult",
    "month_bounds",
    "month_partitions",
    "partition_name",
    "partitioned",
    "partitions_ensure",
    "previous_month",
]

PARENT = "gateway_usageevent"
DEFAULT = f"{PARENT}_default"
GUARD = f"{PARENT}_request"  # one row per request id (migration 0014)


@dataclass
class EnsureResult:
    created: list[str] = field(default_factory=list)
    moved: int = 0  # rows moved out of the default partition
    left_in_default: int = 0  # rows still there (none expected)


def partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = %s", [PARENT])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def previous_month(month: datetime) -> datetime:
    return month_start(month_start(month) - timedelta(days=1))


def month_bounds(month: datetime) -> tuple[datetime, datetime]:
    start = month_start(month)
    return start, next_month(start)


def partition_name(month: datetime) -> str:
    return f"{PARENT}_p{month_start(month):%Y_%m}"


def month_partitions() -> dict[datetime, str]:
    """The attached month partitions, by their first day (UTC), oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass AND c.relname <> %s ORDER BY c.relname",
            [PARENT, DEFAULT],
        )
        names = [row[0] for row in cursor.fetchall()]
    return {datetime.strptime(n[-7:], "%Y_%m").replace(tzinfo=UTC): n for n in names}


def partitions_ensure(*, ahead: int = 2, now: datetime | None = None) -> EnsureResult:
    """Create the partitions of this month and the `ahead` next ones, and of every month that
    has rows in the default partition, moving those rows into it. Idempotent.

    Each month is one short transaction. The partition is built as a plain table, filled, then
    attached: ATTACH takes a SHARE UPDATE EXCLUSIVE lock on the parent (the gateway keeps
    inserting; `CREATE TABLE ... PARTITION OF` would take an ACCESS EXCLUSIVE one) and an
    ACCESS EXCLUSIVE one on the default partition while it checks that none of its rows belong
    to the new month (a short scan: the rows were just moved out). The moved rows are deleted
    from the default partition directly, not through the parent, so the rollup triggers (on
    the parent) see neither the delete nor the insert: the rollups already count them.
    """
    result = EnsureResult()
    if not partitioned():
        return result
    month = month_start(now or timezone.now())
    wanted = {month}
    for _ in range(ahead):
        month = next_month(month)
        wanted.add(month)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') FROM {DEFAULT}"  # noqa: S608
        )
        wanted |= {row[0].replace(tzinfo=UTC) for row in cursor.fetchall()}
    existing = month_partitions()
    for month in sorted(wanted - set(existing)):
        moved = _partition_create(month)
        result.created.append(partition_name(month))
        result.moved += moved
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {DEFAULT}")  # noqa: S608
        result.left_in_default = cursor.fetchone()[0]
    return result


def _partition_create(month: datetime) -> int:
    """Create one month's partition, moving its rows out of the default one. Returns the rows
    moved."""
    name = partition_name(month)
    start, end = month_bounds(month)
    bounds = f"FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"  # DDL takes no parameters
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        # The range as a constraint: ATTACH then skips scanning the new table.
        cursor.execute(
            f"ALTER TABLE {name} ADD CONSTRAINT {name}_range CHECK"
            f" (created_at >= '{start.isoformat()}' AND created_at < '{end.isoformat()}')"
        )
        # Deleting from the default partition fires its copy of the request-id trigger, which
        # frees those request ids; they are claimed again below, in this transaction (a
        # concurrent insert of one of them waits for it, then fails as a duplicate).
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE created_at >= %s AND created_at < %s"  # noqa: S608
            f" RETURNING *) INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        moved = cursor.rowcount
        cursor.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES {bounds}")
        cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_range")
        if moved:
            cursor.execute(f"INSERT INTO {GUARD} (request_id) SELECT request_id FROM {name}")  # noqa: S608
    return moved
