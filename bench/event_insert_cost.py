"""What one usage event insert costs with the table plain (before gateway 0014) and partitioned
by month (after: tuple routing, the request-id row trigger and its table), not a test; issue 18.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/cb_event_insert \\
        python bench/event_insert_cost.py --events 5000 --rounds 3

Each event is one INSERT in its own transaction (as the capture writes it, the rollup trigger
included), `synchronous_commit = off` so the figure is the statement's, not the disk's flush.
Rounds alternate before / after (this machine drifts). Creates and drops its own database.
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
URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cb_event_insert")
os.environ["DATABASE_URL"] = URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_REPLICA_URL", None)

BEFORE = ("gateway", "0013_one_delta_cache_cost")
INSERT = """
INSERT INTO gateway_usageevent (organization_id, department_id, request_id, "user", tags,
    endpoint, provider, target_id, model_requested, model_served, stream, prompt_tokens,
    completion_tokens, cached_tokens, cache_write_tokens, cost, currency, usage_source, status,
    http_status, error_code, latency_ms, prompt_fingerprint, attempts, policy, policy_saved,
    above_hold, saved, created_at)
VALUES (%(org)s, %(dept)s, %(rid)s, %(user)s, '{}', '/v1/chat/completions', 'openai', 'openai',
    'gpt-4o-mini', 'gpt-4o-mini', false, 812, 164, 0, 0, 0.0123, 'USD', 'provider', 'ok', 200,
    '', 640, md5(%(rid)s) || md5(%(user)s), '[]', '', 0, false, 0, now())
RETURNING id
"""


def run(label: str, ids: dict, events: int) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE gateway_usageevent, gateway_spenddelta RESTART IDENTITY")
        cursor.execute("CHECKPOINT")
    raw = connection.connection
    with raw.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
    raw.commit()
    began = time.perf_counter()
    for n in range(events):
        params = {**ids, "rid": f"req_{label}_{n:09d}", "user": f"user{n % 2000}@example.com"}
        with raw.transaction(), raw.cursor() as cur:
            cur.execute(INSERT, params)
    return (time.perf_counter() - began) * 1000 / events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from bench.benchdb import database_drop, database_recreate

    database_recreate(URL)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from chargeback.models import Department, Organization

    try:
        call_command("migrate", verbosity=0)
        org = Organization.objects.create(name="Insert bench", slug="insert-bench")
        dept = Department.objects.create(organization=org, team_id="team_eng", name="Eng")
        ids = {"org": org.pk, "dept": dept.pk}
        results = {"plain (before 0014)": [], "partitioned (0014)": []}
        for n in range(args.rounds):
            for label, target in (("plain (before 0014)", BEFORE), ("partitioned (0014)", None)):
                call_command("migrate", *(target or ("gateway",)), verbosity=0)
                connection.close()
                connection.ensure_connection()
                ms = run(f"r{n}{len(label)}", ids, args.events)
                results[label].append(ms)
                print(f"round {n + 1} {label:20} {ms:.3f} ms per event insert", flush=True)
        print(f"== median of {args.rounds} rounds of {args.events:,} single-row inserts")
        for label, runs in results.items():
            print(f"   {label:20} {statistics.median(runs):.3f} ms")
    finally:
        connection.close()
        database_drop(URL)


if __name__ == "__main__":
    main()
