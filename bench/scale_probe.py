"""Time a few pages of a scale database (bench/scale.py's) and show where their time goes: the
median of --runs through Django's test client, as bench/scale_times.py times them, and each
page's slowest queries (--top; --explain adds EXPLAIN (ANALYZE, BUFFERS) of each).

    BENCH_SCALE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/cb_scale \\
        python bench/scale_probe.py [--runs 5] [--top 3] [--explain] [--branch-schema] PAGE ...

PAGE: ledger, events, events_dm (engineering, last month), dept (engineering's page, last month),
deptcsv, user, group (/v1/spend?by=..., last month), recon (reconciliation).

Everything runs in one transaction rolled back at the end (the login's session too), so a
shared database is read, never changed. --branch-schema first builds, inside that transaction,
what this branch's migrations add and the database may not have yet (gateway 0014: the per-user
month rows, filled from the daily ones and kept by their triggers; 0015: the partial index on
policy-changed events): a measure of the branch on a database migrated by main, before anyone
migrates it.
"""

import argparse
import importlib
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_SCALE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cb_scale"
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_REPLICA_URL", None)


def branch_schema() -> float:
    from django.db import connection

    from gateway.models import UsageEvent
    from gateway.rollup_models import SpendUserMonth

    began = time.monotonic()
    month = importlib.import_module("gateway.migrations.0014_spend_user_month")
    with connection.schema_editor(atomic=False) as editor:
        editor.create_model(SpendUserMonth)
        editor.execute(month.FORWARD)
        policy = next(i for i in UsageEvent._meta.indexes if i.name == "event_policy_time")
        editor.add_index(UsageEvent, policy)
    return time.monotonic() - began


def pages(slug: str) -> dict:
    from django.test import Client

    from bench.scale_data import window
    from bench.scale_times import PASSWORD
    from chargeback.models import Organization

    org = Organization.objects.get(slug=slug)
    _, now = window()
    last = (now.replace(day=1) - timedelta(days=1)).replace(day=1)
    lm = f"{last:%Y-%m}"
    eng = org.departments.get(team_id="team_engineering")
    web = Client()
    assert web.login(username=f"finance_{slug}", password=PASSWORD)
    api = Client(headers={"authorization": f"Bearer kt_admin_bench_{slug}"})
    events = "/admin/gateway/usageevent/"
    dept = f"/dashboard/departments/team_engineering/?month={lm}"
    return {
        "ledger": (web, "/admin/wallets/ledgerentry/"),
        "events": (web, events),
        "events_dm": (
            web,
            (
                f"{events}?department__id__exact={eng.pk}"
                f"&created_at__year={last.year}&created_at__month={last.month}"
            ),
        ),
        "dept": (web, dept),
        "deptcsv": (web, f"{dept}&format=csv"),
        "user": (api, f"/v1/spend?by=user&month={lm}"),
        "group": (api, f"/v1/spend?by=group&month={lm}"),
        "recon": (web, "/admin/reports/providerinvoice/reconciliation/"),
        "budgets": (api, "/v1/budgets"),
        "overview": (web, f"/dashboard/?month={lm}"),
    }


def probe(name, client, path, args) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    for _ in range(args.runs):
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            response = client.get(path)
            if getattr(response, "streaming", False):
                b"".join(response.streaming_content)
            times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    runs = " ".join(f"{t:.0f}" for t in times)
    print(f"| {name} | {statistics.median(times):,.1f} ms | {runs} | {len(queries)} queries |")
    slowest = sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[: args.top]
    for query in slowest:
        print(f"    {float(query['time']) * 1000:.0f} ms  {query['sql'][:160]}")
        if args.explain:
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                print("\n".join("        " + row[0] for row in cursor.fetchall()))
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="+")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--branch-schema", action="store_true")
    parser.add_argument("--org", default="big")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import transaction

    settings.ALLOWED_HOSTS = ["*"]
    with transaction.atomic():
        if args.branch_schema:
            print(f"branch schema built in {branch_schema():.1f} s (rolled back at the end)")
        found = pages(args.org)
        for name in args.pages:
            probe(name, *found[name], args)
        transaction.set_rollback(True)


if __name__ == "__main__":
    main()
