#!/usr/bin/env python3
"""The money writes of one gateway request, ORM services against the one-statement fast path.

  DATABASE_URL=postgres://.../cb_pricing_bench python bench/recording.py [-n 2000] [--threads 4]

Each cycle is what a request writes: a hold (wallets.services.hold_place or hold_place_fast),
then the capture and the usage event (hold_capture + UsageEvent create in one transaction, or
capture_and_record_fast). Reports wall ms per cycle, process CPU ms per cycle and database
round trips per cycle, for each variant, on the `bench-fast` wallet (run bench/setup_bench.py
setup first, or bench/gateway.sh once). With --threads, that many threads share the one wallet
row: the hot-row contention of a busy department.
"""

import argparse
import os
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django

django.setup()

from django.db import connection, transaction  # noqa: E402

from gateway.fastpath import capture_and_record_fast  # noqa: E402
from gateway.models import UsageEvent  # noqa: E402
from wallets import services  # noqa: E402
from wallets.fastpath import hold_place_fast  # noqa: E402
from wallets.models import Wallet  # noqa: E402


def _event(wallet, request_id):
    return {
        "organization_id": wallet.organization_id,
        "department_id": wallet.department_id,
        "wallet_id": wallet.pk,
        "request_id": request_id,
        "endpoint": "chat.completions",
        "provider": "openai",
        "target_id": "openai",
        "model_requested": "gpt-4o-mini",
        "model_served": "gpt-4o-mini-2024-07-18",
        "prompt_tokens": 25,
        "completion_tokens": 12,
        "cost": Decimal("0.00001095"),
        "tags": {"app": "bench"},
        "latency_ms": 1,
    }


def orm_cycle(wallet):
    request_id = f"bench_orm_{uuid.uuid4().hex}"
    hold = services.hold_place(wallet=wallet, amount=Decimal("0.01"), request_id=request_id)
    with transaction.atomic():
        services.hold_capture(hold=hold, amount=Decimal("0.00001095"))
        UsageEvent.objects.create(**_event(wallet, request_id))


def fast_cycle(wallet):
    request_id = f"bench_fast_{uuid.uuid4().hex}"
    hold = hold_place_fast(wallet=wallet, amount=Decimal("0.01"), request_id=request_id)
    capture_and_record_fast(hold, Decimal("0.00001095"), _event(wallet, request_id))


def run(cycle, wallet, n, threads):
    queries = []

    def worker(count):
        executed = 0

        def counter(execute, sql, params, many, context):
            nonlocal executed
            executed += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counter):
            for _ in range(count):
                cycle(wallet)
        queries.append(executed)
        connection.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    pool = [threading.Thread(target=worker, args=(n // threads,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    done = n // threads * threads
    return {
        "cycles_per_s": round(done / wall),
        "wall_ms": round(wall * 1000 / done * threads, 3),
        "cpu_ms": round(cpu * 1000 / done, 3),
        "django_queries": round(sum(queries) / done, 1),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    wallet = Wallet.objects.get(organization__slug="bench-fast", scope="team")
    for cycle in (orm_cycle, fast_cycle):  # warm up: connections, prepared statements
        run(cycle, wallet, 50, 1)
    for name, cycle in (("orm", orm_cycle), ("fast", fast_cycle), ("orm", orm_cycle)):
        result = run(cycle, wallet, args.n, args.threads)
        print(f"{name:5} threads={args.threads} " + " ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
