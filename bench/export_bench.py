"""Export benchmark (not a test): 100,000 and 1,000,000 usage events exported as CSV.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cb_exports .venv/bin/python bench/export_bench.py

Generates the events once with COPY (an organization per size, reused on later runs), then runs
each export in a fresh process so that its peak RSS (ru_maxrss) is its own. Prints wall time,
rows/s and peak RSS; the goals are 1M rows < 60 s, peak RSS < 200 MB, and the 1M peak within
15 % of the 100k peak (memory flat whatever the row count).
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
SIZES = [100_000, 1_000_000]


def setup():
    import django

    django.setup()


def org_for(rows: int):
    from chargeback.models import ConsumerGroup, Department, Organization

    org, _ = Organization.objects.get_or_create(
        slug=f"bench-{rows}", defaults={"name": f"Bench {rows:,}"}
    )
    depts = [
        Department.objects.get_or_create(organization=org, team_id=t, defaults={"name": t})[0]
        for t in ("team_engineering", "team_support", "team_legal", "team_ops")
    ]
    groups = [
        ConsumerGroup.objects.get_or_create(
            organization=org,
            name=d.team_id.removeprefix("team_"),
            defaults={"department": d, "key_prefix": "kt_cg", "key_hash": f"bench{rows}{d.pk}"},
        )[0]
        for d in depts
    ]
    return org, depts, groups


def generate(rows: int) -> None:
    """COPY `rows` May-2026 events into the size's organization (skipped when already there)."""
    from django.db import connection

    from gateway.models import UsageEvent

    org, depts, groups = org_for(rows)
    have = UsageEvent.objects.filter(organization=org).count()
    if have >= rows:
        print(f"{rows:,} events already there", flush=True)
        return
    UsageEvent.objects.filter(organization=org).delete()
    rng = random.Random(rows)
    start = datetime(2026, 5, 1, tzinfo=UTC)
    step = (31 * 86400) / rows
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "text-embedding-3-small"]
    columns = (
        'organization_id, department_id, consumer_group_id, request_id, "user", tags, endpoint,'
        " provider, target_id, model_requested, model_served, stream, prompt_tokens,"
        " completion_tokens, cached_tokens, cache_write_tokens, cost, currency, usage_source,"
        " status, http_status, error_code, latency_ms, ttft_ms, prompt_fingerprint, created_at"
    )
    began = time.monotonic()
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY gateway_usageevent ({columns}) FROM STDIN") as copy,
    ):
        for i in range(rows):
            k = rng.randrange(4)
            prompt, completion = rng.randint(50, 4000), rng.randint(0, 1500)
            ok = rng.random() > 0.02
            cost = (Decimal(prompt * 250 + completion * 1000) / Decimal(100_000_000)) if ok else 0
            copy.write_row(
                (
                    org.pk,
                    depts[k].pk,
                    groups[k].pk,
                    f"req_bench_{rows}_{i:08d}",
                    f"user{rng.randrange(500)}@example.com",
                    '{"app": "kb", "env": "prod"}' if k == 1 else "{}",
                    "chat.completions",
                    "openai",
                    "openai",
                    models[k],
                    models[k],
                    k == 0,
                    prompt,
                    completion if ok else 0,
                    rng.choice((0, 0, 0, 1024)),
                    0,
                    f"{cost:.8f}",
                    "USD",
                    "provider" if ok else "none",
                    "ok" if ok else "provider_error",
                    200 if ok else 502,
                    "" if ok else "bad_gateway",
                    rng.randint(200, 9000),
                    rng.randint(50, 900),
                    f"{rng.getrandbits(64):016x}",
                    start + timedelta(seconds=i * step),
                )
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE gateway_usageevent")
    print(f"generated {rows:,} events in {time.monotonic() - began:.1f} s", flush=True)


def export(rows: int) -> dict:
    """One CSV export of the size's month, in this (fresh) process."""
    from django.conf import settings

    from reports.exports.running import export_job_run
    from reports.models import ExportJob

    settings.MEDIA_ROOT = os.environ.get("BENCH_MEDIA_ROOT", "/tmp/kt-export-bench")
    org, _, _ = org_for(rows)
    # The row only: the bench times the run itself, not a (possibly eager) enqueue.
    job = ExportJob.objects.create(
        organization=org,
        type="events",
        format="csv",
        date_from="2026-05-01",
        date_to="2026-05-31",
        requested_by="bench",
    )
    began, cpu_before = time.monotonic(), time.process_time()
    job = export_job_run(job_id=job.id)
    wall = time.monotonic() - began
    cpu = time.process_time() - cpu_before
    assert job.status == "completed", job.error
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "rows": job.rows_written,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),  # this process only; the rest is PostgreSQL and waiting
        "rows_per_second": round(job.rows_written / wall),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "bytes": job.manifest["file"]["bytes"],
        "total_usd": job.manifest["totals"]["USD"]["cost"],
    }
    job.file.delete(save=False)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", nargs="?", default="all", choices=["all", "generate", "export"])
    parser.add_argument("--rows", type=int)
    args = parser.parse_args()
    if args.phase == "all":
        results = {}
        for rows in SIZES:
            subprocess.run([sys.executable, __file__, "generate", "--rows", str(rows)], check=True)
        for rows in SIZES:
            out = subprocess.run(
                [sys.executable, __file__, "export", "--rows", str(rows)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[rows] = json.loads(out.strip().splitlines()[-1])
            print(f"{rows:>9,} rows: {results[rows]}", flush=True)
        small, big = results[SIZES[0]], results[SIZES[1]]
        growth = (big["peak_rss_mb"] - small["peak_rss_mb"]) / small["peak_rss_mb"] * 100
        print(
            f"1M: {big['seconds']} s (goal < 60), peak {big['peak_rss_mb']} MB (goal < 200), "
            f"peak growth 100k -> 1M {growth:+.1f} % (goal within 15 %)"
        )
        return 0
    setup()
    if args.phase == "generate":
        generate(args.rows)
    else:
        print(json.dumps(export(args.rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
