"""Where one PostgreSQL stops (not a test; issue 18, docs/operations.md "Scaling out").

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/cb_limits_bench \\
        python bench/single_db_limits.py --threads 8 --seconds 10

Creates (and drops) its own database, migrated as the product's. N threads, each with its own
connection, write requests as the gateway does (bench/index_cost.py: a hold placed, then
captured with its ledger entry and usage event, each step its own transaction) for a while:

- one hot wallet: every thread charges the same wallet, whose row lock serialises the captures
  (the ceiling for one department's wallet, whatever the number of gateway instances);
- spread: each thread charges its own department's wallet: requests (= usage events) per
  second the database takes when no lock is shared;
- one hot wallet with the capture not waiting for its WAL flush (`hot, async`): the ceiling
  that group commit (gateway/groupcommit.py) approaches by sharing one flush among a batch.

Prints requests per second and the latency of a capture.
"""

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cb_limits_bench")
from index_cost import CAPTURE, HOLD_ASYNC, PLACE, URL  # it sets DATABASE_URL for Django


def scene(threads: int) -> list[dict]:
    from chargeback.models import Department, Organization
    from wallets.models import Wallet

    org = Organization.objects.create(name="Limits bench", slug="limits-bench")
    rows = []
    for n in range(threads):
        dept = Department.objects.create(organization=org, team_id=f"team_{n}", name=f"T{n}")
        wallet = Wallet.objects.create(
            organization=org, scope="team", department=dept, name=f"t{n}", balance=10**7
        )
        rows.append({"org": org.pk, "dept": dept.pk, "wallet": wallet.pk})
    return rows


def hammer(label: str, targets: list[dict], seconds: float, durable: bool = True) -> None:
    import psycopg

    stop = time.monotonic() + seconds
    done = [0] * len(targets)
    latencies: list[list[float]] = [[] for _ in targets]

    def work(i: int) -> None:
        # Client-side binding, as Django (and the gateway) sends its statements.
        with psycopg.connect(URL, cursor_factory=psycopg.ClientCursor) as conn:
            n = 0
            while time.monotonic() < stop:
                rid = f"req_{label}_{i}_{n}_{os.urandom(4).hex()}"
                params = {**targets[i], "rid": rid, "user": f"u{n % 100}", "cost": 0.0123}
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(HOLD_ASYNC)
                    cur.execute(PLACE, params)
                    params["hold"] = cur.fetchone()[0]
                began = time.perf_counter()
                with conn.transaction(), conn.cursor() as cur:
                    if not durable:
                        cur.execute(HOLD_ASYNC)
                    cur.execute(CAPTURE, params)
                latencies[i].append((time.perf_counter() - began) * 1000)
                n += 1
            done[i] = n

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(targets))]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - began
    every = sorted(x for lat in latencies for x in lat)
    p99 = every[int(len(every) * 0.99)] if every else 0
    print(
        f"{label:16} {len(targets)} threads: {sum(done) / took:8,.0f} requests/s"
        f" (hold + capture + ledger entry + usage event each); capture latency median"
        f" {statistics.median(every):.2f} ms, p99 {p99:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    from benchdb import database_drop, database_recreate

    database_recreate(URL)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    try:
        call_command("migrate", verbosity=0)
        wallets = scene(args.threads)
        connection.close()
        print(f"PostgreSQL at {URL.rsplit('@', 1)[-1]}, {os.cpu_count()} cores on this machine")
        hammer("one hot wallet", [wallets[0]] * args.threads, args.seconds)
        hammer("spread", wallets, args.seconds)
        # The capture's flush is what a hot wallet's row lock waits on: without it (as with
        # KT_GATEWAY_ASYNC_COMMIT, or nearly, as group commit amortises it) the ceiling is the
        # statement itself.
        hammer("hot, async", [wallets[0]] * args.threads, args.seconds, durable=False)
    finally:
        connection.close()
        database_drop(URL)


if __name__ == "__main__":
    main()
