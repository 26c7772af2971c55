"""What partitioning usage events by month would meet (not a test; issue 18, docs/operations.md
"Usage events by month"). Builds its own database, writes events over three months, converts
`gateway_usageevent` into a table partitioned by month the way the designed migration would (one
transaction: rename, partitioned copy, move the rows, rollup triggers on the parent after the
move) and prints what it checked:

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/cb_partition_probe \\
        python bench/partition_probe.py --events 30000

Drops its database at the end unless --keep.
"""

import argparse
import os
import sys
import time
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cb_partition_probe")
os.environ["DATABASE_URL"] = URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_REPLICA_URL", None)

T = "gateway_usageevent"
MONTHS = ("2026-10-01", "2026-11-01", "2026-12-01", "2027-01-01", "2027-02-01")
COLUMNS = (
    'organization_id, department_id, request_id, "user", tags, endpoint, provider, target_id,'
    " model_requested, model_served, stream, prompt_tokens, completion_tokens, cached_tokens,"
    " cache_write_tokens, cost, currency, usage_source, status, http_status, error_code,"
    " latency_ms, prompt_fingerprint, attempts, policy, policy_saved, above_hold, saved, created_at"
)
VALUES = (
    "%(org)s, %(dept)s, {rid}, 'u@example.com', '{{}}', '/v1/chat/completions', 'openai',"
    " 'openai', 'gpt-4o-mini', 'gpt-4o-mini', false, 812, 164, 0, 0, 0.0123, 'USD', 'provider',"
    " 'ok', 200, '', 640, '', '[]', '', 0, false, 0, {at}"
)
TRIGGERS = f"""
CREATE TRIGGER gateway_spend_insert AFTER INSERT ON {T}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_delta();
CREATE TRIGGER gateway_spend_update AFTER UPDATE ON {T}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_delta();
CREATE TRIGGER gateway_spend_delete AFTER DELETE ON {T}
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_delta();
"""


def convert(cur) -> None:
    """The designed migration, in the caller's transaction."""
    old = f"{T}_unpartitioned"
    cur.execute(f"LOCK TABLE {T} IN ACCESS EXCLUSIVE MODE")
    cur.execute(f"ALTER TABLE {T} RENAME TO {old}")
    cur.execute(
        f"CREATE TABLE {T} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
        " INCLUDING IDENTITY) PARTITION BY RANGE (created_at)"
    )
    cur.execute(f"ALTER TABLE {T} ADD PRIMARY KEY (id, created_at)")
    cur.execute(
        f"ALTER TABLE {T} ADD CONSTRAINT event_request_id_time UNIQUE (request_id, created_at)"
    )
    cur.execute(f"CREATE INDEX event_org_time_p ON {T} (organization_id, created_at)")
    cur.execute(
        f"CREATE INDEX event_dept_time_p ON {T} (organization_id, department_id, created_at)"
    )
    for start, end in pairwise(MONTHS):
        name = f"{T}_p{start[:7].replace('-', '_')}"
        cur.execute(
            f"CREATE TABLE {name} PARTITION OF {T} FOR VALUES FROM ('{start}') TO ('{end}')"
        )
    cur.execute(f"CREATE TABLE {T}_default PARTITION OF {T} DEFAULT")
    cur.execute(f"INSERT INTO {T} OVERRIDING SYSTEM VALUE SELECT * FROM {old}")
    cur.execute(f"SELECT setval(pg_get_serial_sequence('{T}', 'id'), (SELECT max(id) FROM {T}))")
    cur.execute(TRIGGERS)  # after the move: before it, every event would be rolled up twice
    cur.execute(f"DROP TABLE {old}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--keep", action="store_true", help="leave the database for a look")
    args = parser.parse_args()
    import psycopg

    admin = URL.rsplit("/", 1)[0] + "/postgres"
    name = URL.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    import django

    django.setup()
    from django.core.management import call_command

    from chargeback.models import Department, Organization

    try:
        call_command("migrate", verbosity=0)
        org = Organization.objects.create(name="Probe", slug="probe")
        dept = Department.objects.create(organization=org, team_id="team_probe", name="Probe")
        ids = {"org": org.pk, "dept": dept.pk}
        with psycopg.connect(URL, autocommit=True) as conn, conn.cursor() as cur:
            spread = "timestamptz '2026-10-01' + (n %% 66) * interval '1 day' + n * interval '1 s'"
            cur.execute(
                f"INSERT INTO {T} ({COLUMNS}) SELECT "
                + VALUES.format(rid="'req_' || n", at=spread)
                + " FROM generate_series(1, %(n)s) n",
                {**ids, "n": args.events},
            )
            cur.execute("SELECT gateway_spend_fold()")
            month_sums = f"SELECT date_trunc('month', created_at), count(*), sum(cost) FROM {T} GROUP BY 1 ORDER BY 1"
            before = cur.execute(month_sums).fetchall()
            began = time.perf_counter()
            with conn.transaction():
                convert(cur)
            took = time.perf_counter() - began
            after = cur.execute(month_sums).fetchall()
            print(
                f"converted {args.events:,} events in {took:.2f} s; per month equal: {before == after}"
            )
            deltas = cur.execute("SELECT count(*) FROM gateway_spenddelta").fetchone()[0]
            print(f"rollup deltas after the move (0: the move was not rolled up twice): {deltas}")

            insert = f"INSERT INTO {T} ({COLUMNS}) VALUES ({VALUES})"
            cur.execute(insert.format(rid="'req_new'", at="now()"), ids)
            deltas = cur.execute("SELECT count(*) FROM gateway_spenddelta").fetchone()[0]
            print(f"an insert through the parent reaches the rollup trigger: {deltas == 1}")
            try:
                with conn.transaction():
                    cur.execute(
                        insert.format(rid="'req_new'", at="now()")
                        + " ON CONFLICT (request_id) DO NOTHING",
                        ids,
                    )
                print("ON CONFLICT (request_id): accepted")
            except psycopg.Error as exc:
                print(f"ON CONFLICT (request_id): refused ({exc.diag.message_primary})")
            cur.execute(insert.format(rid="'req_new'", at="now() + interval '1 s'"), ids)
            dupes = cur.execute(
                f"SELECT count(*) FROM {T} WHERE request_id = 'req_new'"
            ).fetchone()[0]
            print(f"events for one request id written at two times: {dupes} (today: 1)")

            cur.execute("SELECT gateway_spend_fold()")
            october = "SELECT count(*), sum(cost) FROM gateway_spenddaily WHERE day < '2026-11-01'"
            rolled = cur.execute(october).fetchone()
            cur.execute(f"ALTER TABLE {T} DETACH PARTITION {T}_p2026_10")
            deltas = cur.execute("SELECT count(*) FROM gateway_spenddelta").fetchone()[0]
            print(
                f"October detached: deltas {deltas}, October's daily rollups unchanged:"
                f" {cur.execute(october).fetchone() == rolled} {rolled}"
            )
            plan = cur.execute(
                f"EXPLAIN SELECT sum(cost) FROM {T} WHERE organization_id = %(org)s"
                " AND created_at >= '2026-11-01' AND created_at < '2026-12-01'",
                ids,
            ).fetchall()
            scanned = sorted(
                {w for (line,) in plan for w in line.split() if w.startswith(f"{T}_p")}
            )
            print(f"one organization's November reads: {', '.join(scanned)}")
            cur.execute(f"CREATE INDEX probe_brin ON {T}_p2026_11 USING brin (created_at)")
            cur.execute(f"CREATE INDEX probe_btree ON {T}_p2026_11 (created_at)")
            sizes = dict(
                cur.execute(
                    "SELECT relname, pg_relation_size(oid) FROM pg_class"
                    " WHERE relname IN ('probe_brin', 'probe_btree')"
                ).fetchall()
            )
            rows = cur.execute(f"SELECT count(*) FROM {T}_p2026_11").fetchone()[0]
            print(
                f"created_at index on November ({rows:,} rows): BRIN {sizes['probe_brin']:,} bytes,"
                f" B-tree {sizes['probe_btree']:,} bytes"
            )
    finally:
        from django.db import connection

        connection.close()
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
