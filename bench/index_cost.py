"""What the indexes of usage events, holds and the ledger cost per request (not a test; issue
18, "indexes that earn their size"). Prints the insert time and the bytes per request (event,
hold and ledger rows with their indexes and TOAST) with the indexes as they were before
gateway 0009 / wallets 0008 and as they are now.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/cb_index_bench \\
        python bench/index_cost.py --requests 10000 --rounds 2 [--before gateway:0009_...,...]

`--before` names the migrations of the "before" state (default: before gateway 0009 / wallets
0008). The rollups' tables (daily rows, deltas, the prompts' month rows) are measured too,
after a fold, and printed apart: they are not per-request rows but grow with distinct prompts.

Creates (and drops, unless --keep) its own database. Each request is written as the gateway
writes one, in its own transaction: the hold placed (the wallet's `held` raised), then the
capture: hold resolved, wallet balance and held updated, one capture ledger entry, one usage
event (with a prompt fingerprint, as every chat request has; the rollup trigger runs).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cb_index_bench")
os.environ["DATABASE_URL"] = URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_REPLICA_URL", None)

BEFORE = [("gateway", "0008_spend_rollup_triggers"), ("wallets", "0007_hold_department")]
HOLD_ASYNC = "SET LOCAL synchronous_commit = off"
TABLES = ("gateway_usageevent", "wallets_hold", "wallets_ledgerentry")
GUARD = "gateway_usageevent_request"  # one row per request id where events are partitioned
ROLLUP_TABLES = (
    "gateway_spenddaily",
    "gateway_spenddelta",
    "gateway_spenduserdaily",
    "gateway_promptmonth",
)

PLACE = """
WITH w AS (UPDATE wallets_wallet SET held = held + 0.05 WHERE id = %(wallet)s RETURNING id)
INSERT INTO wallets_hold (organization_id, wallet_id, department_id, request_id, amount, status,
    expires_at, created_at)
SELECT %(org)s, id, %(dept)s, %(rid)s, 0.05, 'pending', now() + interval '10 minutes', now()
FROM w
RETURNING id
"""
CAPTURE = """
WITH h AS (
    UPDATE wallets_hold SET status = 'captured', captured_amount = %(cost)s, resolved_at = now()
    WHERE id = %(hold)s AND status = 'pending' RETURNING id, amount
), w AS (
    UPDATE wallets_wallet SET balance = balance - %(cost)s, held = held - h.amount
    FROM h WHERE wallets_wallet.id = %(wallet)s RETURNING balance
), e AS (
    INSERT INTO wallets_ledgerentry (organization_id, wallet_id, kind, amount, balance_after,
        currency, description, request_hash, hold_id, reference, transfer_id, actor, created_at)
    SELECT %(org)s, %(wallet)s, 'capture', -%(cost)s, w.balance, 'USD', '', '', %(hold)s,
        %(rid)s, '', '', now() FROM w
    RETURNING id
)
INSERT INTO gateway_usageevent (organization_id, department_id, wallet_id, request_id, "user",
    tags, endpoint, provider, target_id, model_requested, model_served, stream, prompt_tokens,
    completion_tokens, cached_tokens, cache_write_tokens, cost, currency, usage_source, status,
    http_status, error_code, latency_ms, prompt_fingerprint, attempts, policy, policy_saved,
    above_hold, saved, created_at)
SELECT %(org)s, %(dept)s, %(wallet)s, %(rid)s, %(user)s, '{}', '/v1/chat/completions',
    'openai', 'openai', 'gpt-4o-mini', 'gpt-4o-mini', false, 812, 164, 0, 0, %(cost)s, 'USD',
    'provider', 'ok', 200, '', 640, md5(%(rid)s) || md5(%(user)s), '[]', '', 0, false, 0, now()
FROM e
"""


def migrate(targets) -> None:
    from django.core.management import call_command

    if targets:
        for app, name in targets:
            call_command("migrate", app, name, verbosity=0)
    else:
        call_command("migrate", verbosity=0)


def scene() -> dict:
    from chargeback.models import Department, Organization
    from wallets.models import Wallet

    org = Organization.objects.create(name="Index bench", slug="index-bench")
    dept = Department.objects.create(organization=org, team_id="team_engineering", name="Eng")
    wallet = Wallet.objects.create(
        organization=org, scope="team", department=dept, name="eng", balance=10**6
    )
    return {"org": org.pk, "dept": dept.pk, "wallet": wallet.pk}


def run(label: str, ids: dict, requests: int) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s)", [list(ROLLUP_TABLES)]
        )
        rollups = [name for (name,) in cursor.fetchall()]
        cursor.execute(f"TRUNCATE {', '.join((*TABLES, *rollups))} RESTART IDENTITY CASCADE")
        cursor.execute("CHECKPOINT")
    raw = connection.connection
    began = time.perf_counter()
    per_round = []
    round_began = began
    for n in range(requests):
        rid = f"req_{label}_{n:09d}_{os.urandom(6).hex()}"
        params = {**ids, "rid": rid, "user": f"user{n % 2000}@example.com", "cost": 0.0123}
        with raw.transaction(), raw.cursor() as cur:
            cur.execute(HOLD_ASYNC)  # as the gateway: a hold never waits for the WAL flush
            cur.execute(PLACE, params)
            params["hold"] = cur.fetchone()[0]
        with raw.transaction(), raw.cursor() as cur:
            cur.execute(CAPTURE, params)
        if (n + 1) % 1000 == 0:
            now = time.perf_counter()
            per_round.append((now - round_began) * 1000 / 1000)
            round_began = now
    took = time.perf_counter() - began
    with connection.cursor() as cursor:
        cursor.execute("SELECT gateway_spend_fold()")
        if rollups:
            cursor.execute("VACUUM ANALYZE " + ", ".join(rollups))
            cursor.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)",
                [rollups],
            )
            rollup_sizes = dict(cursor.fetchall())
        # Partitioned events (gateway 0014): the partitions summed under the parent's name, and
        # the request-id guard table as a table of its own.
        cursor.execute("SELECT relname FROM pg_class WHERE relname = %s", [GUARD])
        tables_now = [*TABLES, *(name for (name,) in cursor.fetchall())]
        cursor.execute("VACUUM ANALYZE " + ", ".join(tables_now))
        cursor.execute(
            "SELECT c.relname, sum(pg_total_relation_size(t.oid)), sum(pg_relation_size(t.oid))"
            " FROM pg_class c JOIN pg_class t ON t.oid = c.oid"
            " OR t.oid IN (SELECT relid FROM pg_partition_tree(c.oid))"
            " WHERE c.relname = ANY(%s) GROUP BY c.relname",
            [tables_now],
        )
        tables = {name: (total, heap) for name, total, heap in cursor.fetchall()}
        cursor.execute(
            "SELECT COALESCE(pg_partition_root(relid)::regclass::text, relname) AS t,"
            " COALESCE(pg_partition_root(indexrelid)::regclass::text, indexrelname) AS i,"
            " sum(pg_relation_size(indexrelid))"
            " FROM pg_stat_user_indexes GROUP BY 1, 2 HAVING"
            " COALESCE(pg_partition_root(relid)::regclass::text, relname) = ANY(%s) ORDER BY 1, 2",
            [tables_now],
        )
        indexes = cursor.fetchall()
    return {
        "ms": took * 1000 / requests,
        "median_ms": statistics.median(per_round) if per_round else took * 1000 / requests,
        "tables": tables,
        "indexes": indexes,
        "rollups": rollup_sizes if rollups else {},
    }


def report(label: str, result: dict, requests: int) -> None:
    total = sum(t for t, _ in result["tables"].values())
    print(f"== {label}: {requests:,} requests")
    print(
        f"   write: {result['ms']:.3f} ms per request (median of 1,000-request rounds"
        f" {result['median_ms']:.3f} ms); {total / requests:,.0f} bytes per request"
    )
    for name, (tot, heap) in sorted(result["tables"].items()):
        print(
            f"   {name:22} {tot / requests:6,.0f} B/request"
            f" (rows {heap / requests:5,.0f}, indexes+TOAST {(tot - heap) / requests:5,.0f})"
        )
    for table, index, size in result["indexes"]:
        print(f"     {table:22} {index:45} {size / requests:5,.0f} B/request")
    for table, size in sorted(result["rollups"].items()):
        print(f"   rollup {table:22} {size / requests:6,.0f} B/request (after the fold)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="leave the database for a look")
    parser.add_argument(
        "--before", default="", help="app:migration,... of the 'before' state (default: BEFORE)"
    )
    args = parser.parse_args()
    before = [tuple(t.split(":")) for t in args.before.split(",") if t] or BEFORE
    from bench.benchdb import database_drop, database_recreate

    database_recreate(URL)
    import django

    django.setup()
    from django.db import connection

    try:
        migrate([])
        ids = scene()
        results = {"before": [], "after": []}
        # Alternating, as this machine drifts: before, after, before, after, ...
        for n in range(args.rounds):
            for label, targets in (("before", before), ("after", [])):
                migrate(targets)
                connection.close()
                connection.ensure_connection()
                result = run(f"{label}{n}", ids, args.requests)
                results[label].append(result)
                report(f"{label}, round {n + 1}", result, args.requests)
        print("== summary: median over rounds")
        for label, runs in results.items():
            ms = statistics.median(r["ms"] for r in runs)
            size = statistics.median(sum(t for t, _ in r["tables"].values()) for r in runs)
            print(f"   {label:6} {ms:.3f} ms per request, {size / args.requests:,.0f} bytes")
        # Resolved holds are deleted after KT_HOLD_RETENTION_DAYS (wallets/retention.py): a
        # request older than that keeps only its event and ledger entry.
        kept = statistics.median(
            sum(t for name, (t, _) in r["tables"].items() if name != "wallets_hold")
            for r in results["after"]
        )
        print(
            f"   after, once its hold is deleted (older than KT_HOLD_RETENTION_DAYS):"
            f" {kept / args.requests:,.0f} bytes per request (event + ledger entry)"
        )
    finally:
        connection.close()
        if not args.keep:
            database_drop(URL)


if __name__ == "__main__":
    main()
