"""Usage events partitioned by calendar month (UTC) on PostgreSQL (issue 18; docs/operations.md
"Usage events by month"). SQLite (the embedded demo) keeps the plain table: nothing runs there.

Django's state does not change: the model keeps `id` as its primary key and its
`event_request_id_unique` constraint (real on SQLite). On PostgreSQL the table's primary key
becomes (id, created_at), since a unique key of a partitioned table must hold the partition
key, and one event per request id is kept by a small unpartitioned table of request ids filled
by a row trigger (`gateway_usageevent_request`, whose primary key carries the constraint's
name, so a duplicate fails as before with an IntegrityError).

The rows are copied under an ACCESS EXCLUSIVE lock on the table, in this migration's
transaction (docs/operations.md has the time for 1 M events). The rollup triggers are
recreated on the new parent after the copy (before it, every event would be rolled up a second
time); they call the functions by name, whose bodies belong to the rollup migrations.
"""

from datetime import UTC, datetime

import django.utils.timezone
from django.db import migrations, models

T = "gateway_usageevent"
OLD = f"{T}_unpartitioned"
GUARD = f"{T}_request"
MONTHS_AHEAD = 2

# The functions of the request-id guard (the rollup functions are not ours to define).
GUARD_SQL = f"""
CREATE OR REPLACE FUNCTION gateway_event_request_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {GUARD} (request_id) VALUES (NEW.request_id);
    RETURN NEW;
END $$;
-- BEFORE DELETE, not AFTER: an UPDATE that moves a row to another month's partition runs as a
-- delete then an insert, and the insert's claim must find the request id free again.
CREATE OR REPLACE FUNCTION gateway_event_request_free() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {GUARD} WHERE request_id = OLD.request_id;
    RETURN OLD;
END $$;
CREATE OR REPLACE FUNCTION gateway_event_request_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE {GUARD};
    RETURN NULL;
END $$;
-- VOLATILE: a fresh snapshot, so it sees an event committed while the calling statement waited
-- for a hold's row lock (the capture statement's `ev_unresolved`, gateway/fastpath.py).
CREATE OR REPLACE FUNCTION gateway_event_new(rid text) RETURNS boolean LANGUAGE sql VOLATILE AS $$
    SELECT NOT EXISTS (SELECT 1 FROM {GUARD} WHERE request_id = rid)
$$;
"""

TRIGGERS_SQL = f"""
CREATE TRIGGER gateway_event_request_claim BEFORE INSERT ON {T}
    FOR EACH ROW EXECUTE FUNCTION gateway_event_request_claim();
CREATE TRIGGER gateway_event_request_free BEFORE DELETE ON {T}
    FOR EACH ROW EXECUTE FUNCTION gateway_event_request_free();
CREATE TRIGGER gateway_event_request_truncate AFTER TRUNCATE ON {T}
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_event_request_truncate();
"""

ROLLUP_TRIGGERS_SQL = f"""
CREATE TRIGGER gateway_spend_insert AFTER INSERT ON {T}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_insert();
CREATE TRIGGER gateway_spend_update AFTER UPDATE ON {T}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_change();
CREATE TRIGGER gateway_spend_delete AFTER DELETE ON {T}
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_change();
"""


def _next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def _months(cursor) -> list[datetime]:
    """The first day (UTC) of each month from the oldest event to MONTHS_AHEAD after now."""
    cursor.execute(f"SELECT min(created_at) FROM {OLD}")
    oldest = cursor.fetchone()[0]
    now = datetime.now(UTC)
    month = (min(oldest, now) if oldest else now).astimezone(UTC)
    month = month.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _ in range(MONTHS_AHEAD):
        last = _next_month(last)
    months = []
    while month <= last:
        months.append(month)
        month = _next_month(month)
    return months


def _indexes(cursor, table: str) -> list[str]:
    """The table's plain indexes (not its primary or unique keys), as CREATE INDEX statements."""
    cursor.execute(
        "SELECT i.indexdef FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname"
        " JOIN pg_index x ON x.indexrelid = c.oid"
        " WHERE i.tablename = %s AND i.schemaname = current_schema()"
        " AND NOT x.indisunique ORDER BY i.indexname",
        [table],
    )
    return [row[0] for row in cursor.fetchall()]


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {T} IN ACCESS EXCLUSIVE MODE")
        indexes = _indexes(cursor, T)
        cursor.execute(f"ALTER TABLE {T} RENAME TO {OLD}")
        for name in ("gateway_spend_insert", "gateway_spend_update", "gateway_spend_delete"):
            cursor.execute(f"DROP TRIGGER {name} ON {OLD}")
        cursor.execute(f"ALTER TABLE {OLD} DROP CONSTRAINT event_request_id_unique")
        cursor.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT {T}_pkey TO {OLD}_pkey")
        for statement in indexes:  # their names are free for the parent's
            name = statement.split()[2]
            cursor.execute(f"ALTER INDEX {name} RENAME TO {name[:40]}_unpartitioned")
        cursor.execute(
            f"CREATE TABLE {T} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
            " INCLUDING IDENTITY) PARTITION BY RANGE (created_at)"
        )
        cursor.execute(f"ALTER TABLE {T} ADD CONSTRAINT {T}_pkey PRIMARY KEY (id, created_at)")
        for month in _months(cursor):
            cursor.execute(
                f"CREATE TABLE {T}_p{month:%Y_%m} PARTITION OF {T}"
                f" FOR VALUES FROM ('{month.isoformat()}') TO ('{_next_month(month).isoformat()}')"
            )
        cursor.execute(f"CREATE TABLE {T}_default PARTITION OF {T} DEFAULT")
        cursor.execute(f"INSERT INTO {T} OVERRIDING SYSTEM VALUE SELECT * FROM {OLD}")
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{T}', 'id'),"
            f" COALESCE((SELECT max(id) FROM {T}), 0) + 1, false)"
        )
        for statement in indexes:
            cursor.execute(statement)
        cursor.execute(f"CREATE INDEX event_request_id ON {T} (request_id)")
        # The guard's key is built after it is filled: faster than one insert at a time.
        cursor.execute(f"CREATE TABLE {GUARD} (request_id varchar(100) NOT NULL)")
        cursor.execute(f"INSERT INTO {GUARD} (request_id) SELECT request_id FROM {OLD}")
        cursor.execute(
            f"ALTER TABLE {GUARD} ADD CONSTRAINT event_request_id_unique PRIMARY KEY (request_id)"
        )
        cursor.execute(GUARD_SQL)
        cursor.execute(f"DROP TABLE {OLD}")
        cursor.execute(TRIGGERS_SQL)
        cursor.execute(ROLLUP_TRIGGERS_SQL)  # after the copy: it must not be rolled up again
        # The new partitions have no statistics until autovacuum gets to them: plan with them now
        # (a department's month listed in the admin took twice as long without; docs/operations.md).
        cursor.execute(f"ANALYZE {T}")


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {T} IN ACCESS EXCLUSIVE MODE")
        indexes = [s for s in _indexes(cursor, T) if " event_request_id " not in s]
        cursor.execute(f"ALTER TABLE {T} RENAME TO {OLD}")
        cursor.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT {T}_pkey TO {OLD}_pkey")
        for statement in indexes:
            name = statement.split()[2]
            cursor.execute(f"ALTER INDEX {name} RENAME TO {name[:40]}_unpartitioned")
        cursor.execute(
            f"CREATE TABLE {T} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
            " INCLUDING IDENTITY)"
        )
        cursor.execute(f"ALTER TABLE {T} ADD CONSTRAINT {T}_pkey PRIMARY KEY (id)")
        cursor.execute(f"INSERT INTO {T} OVERRIDING SYSTEM VALUE SELECT * FROM {OLD}")
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{T}', 'id'),"
            f" COALESCE((SELECT max(id) FROM {T}), 0) + 1, false)"
        )
        cursor.execute(f"DROP TABLE {OLD}")
        cursor.execute(f"DROP TABLE {GUARD}")
        cursor.execute(
            f"ALTER TABLE {T} ADD CONSTRAINT event_request_id_unique UNIQUE (request_id)"
        )
        for statement in indexes:
            cursor.execute(statement.replace(" ONLY ", " "))
        for name in ("claim", "free", "truncate"):
            cursor.execute(f"DROP FUNCTION gateway_event_request_{name}()")
        cursor.execute("DROP FUNCTION gateway_event_new(text)")
        cursor.execute(ROLLUP_TRIGGERS_SQL)


class Migration(migrations.Migration):
    dependencies = [("gateway", "0013_one_delta_cache_cost")]

    operations = [
        migrations.RunPython(partition, unpartition, elidable=False),
        # What `events_archive` exported and dropped (reports/event_archive.py).
        migrations.CreateModel(
            name="EventArchive",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("month", models.DateField(help_text="first day of the month, UTC", unique=True)),
                ("path", models.CharField(max_length=500)),
                ("sha256", models.CharField(max_length=64)),
                ("rows", models.BigIntegerField()),
                ("costs", models.JSONField(help_text="summed cost per currency, as text")),
                ("archived_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={"ordering": ["month"]},
        ),
    ]
