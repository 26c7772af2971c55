"""Ledger scale benchmark (not a test): wallet pages, the alert check and the hourly evaluation
on a year of ledger (issue 18, part A and B).

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/cb_scale18_bench   # its own database
    python bench/scale_ledger.py build              # ~1.5 M entries; leaves wallets at 0004
    KT_REPO=/work/main python bench/scale_ledger.py time --label before --runs 1
    python bench/scale_ledger.py migrate            # the partial indexes, timed, with sizes
    python bench/scale_ledger.py time --label after
    python bench/scale_ledger.py inserts            # one-row event INSERT, rollup trigger on/off
    python bench/scale_ledger.py drop

`build` creates the database, migrates it, takes the wallets app back to its migration 0004 (the
ledger as main has it) and generates with INSERT ... SELECT generate_series: organization
"big" with 25 departments (Zipf-like shares, engineering the busiest) and "small" with 5; per
team wallet and the organization's wallet 13 months of captures, a refund for one capture in
200, monthly allocations (credits for the organization's wallet), a reclaim and adjustments
now and then; `balance_after` as a running sum and each wallet's balance = its ledger sum (the
ledger's rule). The last 40 days of captures also become usage events (cost = the capture), so
month-to-date columns and budget checks read real rows. `time` runs each read as the code of
`KT_REPO` (default: this checkout) builds it and prints the median of `--runs` in ms and the
plan's execution time (EXPLAIN ANALYZE); the hourly evaluation prints its query count. The
big organization's month figures (spend_total, spend_by, `GET /v1/spend`, the overview page's
figures) are timed too: before the rollups they sum events, after they read the rollups.
"""

import argparse
import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(os.environ.get("KT_REPO") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.pop("REDIS_URL", None)  # eager Celery, in-process cache: nothing leaves the bench

BIG_DEPARTMENTS, SMALL_DEPARTMENTS = 25, 5


def setup():
    import django

    django.setup()
    from django.conf import settings

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ALLOWED_HOSTS = ["*"]
    logging.getLogger("celery").setLevel(logging.WARNING)


def database_name() -> str:
    return os.environ["DATABASE_URL"].rsplit("/", 1)[1]


def admin_connection():
    import psycopg

    url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    return psycopg.connect(url, autocommit=True)


def organization(slug: str, departments: int):
    from budgets.models import Budget
    from chargeback.models import Department, Organization
    from wallets.services import wallet_for_organization, wallet_for_team

    org, _ = Organization.objects.get_or_create(
        slug=slug, defaults={"name": slug.title(), "finance_emails": [f"finance@{slug}.example"]}
    )
    names = ["engineering", "support", "research", "sales", "legal"]
    names += [f"team{n:02d}" for n in range(len(names), departments)]
    depts = []
    for name in names[:departments]:
        dept, _ = Department.objects.get_or_create(
            organization=org,
            team_id=f"team_{name}",
            defaults={"name": name.title(), "owner_emails": [f"lead@{name}.example"]},
        )
        Budget.objects.get_or_create(
            organization=org,
            department=dept,
            period=Budget.Period.MONTH,
            defaults={"amount": 200, "thresholds": [50, 80, 100]},
        )
        depts.append(dept)
    wallets = [wallet_for_organization(organization=org)]
    wallets += [wallet_for_team(department=d) for d in depts]
    return org, wallets


def build(entries: int) -> None:
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database_name()}"')
        conn.execute(f'CREATE DATABASE "{database_name()}"')
    setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    call_command("migrate", "wallets", "0004", verbosity=0)  # the ledger as main has it
    began = time.monotonic()
    shares = []
    for slug, count, size in (
        ("big", BIG_DEPARTMENTS, entries * 10 // 11),
        ("small", SMALL_DEPARTMENTS, entries // 11),
    ):
        org, wallets = organization(slug, count)
        weights = [0.10 * sum(1 / (r + 1) for r in range(count))]  # org wallet: about 10 %
        weights += [1 / (r + 1) for r in range(count)]
        total = sum(weights)
        shares += [
            (w.pk, org.pk, int(size * weight / total))
            for w, weight in zip(wallets, weights, strict=True)
        ]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bench_wallets (wallet_id int, org_id int, n int)")
        cursor.executemany("INSERT INTO bench_wallets VALUES (%s, %s, %s)", shares)
        cursor.execute(LEDGER_SQL)
        cursor.execute(
            "UPDATE wallets_wallet w SET balance = s.total, held = 0 FROM (SELECT wallet_id,"
            " sum(amount) total FROM wallets_ledgerentry GROUP BY wallet_id) s"
            " WHERE s.wallet_id = w.id"
        )
        cursor.execute(EVENTS_SQL)
        cursor.execute("SELECT to_regproc('gateway_spend_fold') IS NOT NULL")
        if cursor.fetchone()[0]:
            cursor.execute("SELECT gateway_spend_fold()")  # the deltas the INSERT appended
        cursor.execute("VACUUM ANALYZE wallets_ledgerentry")
        cursor.execute("VACUUM ANALYZE gateway_usageevent")
        cursor.execute("SELECT kind, count(*) FROM wallets_ledgerentry GROUP BY 1 ORDER BY 2 DESC")
        kinds = cursor.fetchall()
        cursor.execute("SELECT count(*) FROM gateway_usageevent")
        (events,) = cursor.fetchone()
    print(f"built in {time.monotonic() - began:.0f} s: ledger {kinds}, {events:,} usage events")


# 13 months (395 days) of entries per wallet; the organization's wallet is funded by credits.
LEDGER_SQL = """
WITH caps AS (
    SELECT w.wallet_id, w.org_id, 'capture' AS kind,
           -round((0.002 + random() * 0.05)::numeric, 8) AS amount,
           now() - interval '395 days' + (g.i::float8 / w.n) * interval '395 days' AS at,
           g.i
    FROM bench_wallets w, generate_series(1, w.n) g(i)
), moves AS (
    SELECT wallet_id, org_id, kind, amount, at FROM caps
    UNION ALL  -- one capture in 200 partly refunded an hour later
    SELECT wallet_id, org_id, 'refund', round(-amount / 2, 8), at + interval '1 hour'
    FROM caps WHERE i % 200 = 0
    UNION ALL  -- monthly funding: about a month of spend, sometimes less (low, depleted wallets)
    SELECT w.wallet_id, w.org_id,
           CASE WHEN t.scope = 'organization' THEN 'credit' ELSE 'allocation' END,
           round((w.n / 13.0 * 0.027 * (0.6 + random() * 0.6))::numeric, 8),
           now() - interval '395 days' + m * interval '30 days' + interval '1 minute'
    FROM bench_wallets w JOIN wallets_wallet t ON t.id = w.wallet_id, generate_series(0, 13) m
    UNION ALL  -- a reclaim every quarter, an adjustment every other month
    SELECT w.wallet_id, w.org_id, CASE WHEN m % 3 = 0 THEN 'reclaim' ELSE 'adjustment' END,
           CASE WHEN m % 3 = 0 THEN -1.5 ELSE 0.75 END,
           now() - interval '380 days' + m * interval '30 days'
    FROM bench_wallets w, generate_series(0, 12, 2) m
)
INSERT INTO wallets_ledgerentry (organization_id, wallet_id, kind, amount, balance_after,
    currency, description, idempotency_key, request_hash, reference, actor, created_at)
SELECT org_id, wallet_id, kind, amount,
       sum(amount) OVER (PARTITION BY wallet_id ORDER BY at, kind ROWS UNBOUNDED PRECEDING),
       'USD', '', NULL, '', '', 'bench', at
FROM moves
"""

EVENTS_SQL = """
INSERT INTO gateway_usageevent (organization_id, department_id, wallet_id, request_id, "user",
    tags, endpoint, provider, target_id, model_requested, model_served, stream, prompt_tokens,
    completion_tokens, cached_tokens, cache_write_tokens, cost, currency, usage_source, status,
    http_status, error_code, latency_ms, prompt_fingerprint, above_hold, saved, created_at)
SELECT e.organization_id, w.department_id, e.wallet_id, 'bench-' || e.id,
       'user' || (e.id % 80) || '@example.com', '{}', 'chat.completions', 'openai', 'openai',
       'gpt-' || (e.id % 10), 'gpt-' || (e.id % 10), false, 500, 200, 0, 0, -e.amount, 'USD',
       'provider', 'ok', 200, '', 800, '', false, 0, e.created_at
FROM wallets_ledgerentry e JOIN wallets_wallet w ON w.id = e.wallet_id
WHERE e.kind = 'capture' AND e.created_at > now() - interval '40 days'
"""


def migrate() -> None:
    setup()
    from django.core.management import call_command
    from django.db import connection

    began = time.monotonic()
    call_command("migrate", verbosity=0)
    took = time.monotonic() - began
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelname, pg_size_pretty(pg_relation_size(indexrelid))"
            " FROM pg_stat_user_indexes WHERE relname = 'wallets_ledgerentry' ORDER BY 1"
        )
        sizes = cursor.fetchall()
        cursor.execute("SELECT pg_size_pretty(pg_relation_size('wallets_ledgerentry'))")
        (table,) = cursor.fetchone()
    print(f"migrated in {took:.1f} s; ledger table {table}; indexes {sizes}")


# median_ms from this file's folder (bench/timing.py), also when KT_REPO is an older checkout.
sys.path.append(str(Path(__file__).resolve().parent))
from timing import median_ms  # noqa: E402


def plan_ms(queryset) -> float:
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        return cursor.fetchone()[0][0]["Execution Time"]


def run_times(label: str, runs: int) -> None:
    setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from budgets.evaluation import budgets_evaluate_all
    from budgets.selectors import wallet_last_funding
    from budgets.tasks import check_spend
    from chargeback.keys import hash_key, key_prefix
    from chargeback.models import AdminToken, Department, Organization
    from reports.admin_columns import annotate_departments
    from wallets.models import Wallet
    from wallets.selectors import wallet_annotate_totals

    print(f"== {label}: code of {ROOT}, median of {runs} (ms); plan = EXPLAIN ANALYZE ms")
    for slug in ("big", "small"):
        org = Organization.objects.get(slug=slug)
        raw = f"kt_admin_bench_{slug}"
        AdminToken.objects.get_or_create(
            organization=org,
            token_hash=hash_key(raw),
            defaults={"name": "bench", "token_prefix": key_prefix(raw)},
        )
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        departments = annotate_departments(
            Department.objects.filter(organization=org).order_by("name"), organizations=[org]
        )
        wallets = wallet_annotate_totals(queryset=Wallet.objects.filter(organization=org))
        busiest = Wallet.objects.get(organization=org, department__team_id="team_engineering")
        one_wallet = wallet_annotate_totals(queryset=Wallet.objects.filter(pk=busiest.pk))

        def get_wallets(api=api):
            response = api.get("/v1/wallets")
            assert response.status_code == 200, response.content[:300]

        def check(org=org, wallet=busiest):
            check_spend(org.pk, wallet.department_id, wallet.pk)

        rows = [
            ("admin departments list", lambda q=departments: list(q.all()), departments),
            ("admin wallets list", lambda q=wallets: list(q.all()), wallets),
            ("admin one wallet (busiest)", lambda q=one_wallet: list(q.all()), one_wallet),
            ("GET /v1/wallets", get_wallets, None),
            (
                "check_spend: last funding",
                lambda w=busiest: wallet_last_funding(wallet=w),
                None,
            ),
            ("check_spend (busiest dept)", check, None),
        ]
        for name, fn, queryset in rows:
            median, times = median_ms(fn, runs)
            plan = f"{plan_ms(queryset):10.1f}" if queryset is not None else " " * 10
            print(f"{slug:5} {name:30} {median:10.1f} {plan}   runs {[round(t) for t in times]}")
    spend_figures(runs)
    budgets_evaluate_all()  # first run creates the alerts due; later runs are the steady state
    with CaptureQueriesContext(connection) as queries:
        median, times = median_ms(budgets_evaluate_all, 1)
    median, times = median_ms(budgets_evaluate_all, runs)
    print(f"all   hourly evaluation             {median:10.1f}  queries {len(queries)}")


def spend_figures(runs: int) -> None:
    """Month figures of the big organization (this month and the last), as the code of KT_REPO
    reads them: summing events before the rollups, from the rollups after."""
    from django.utils import timezone
    from rest_framework.test import APIClient

    from chargeback.models import Department, Organization
    from chargeback.periods import local_today, month_end
    from gateway import selectors
    from reports.dashboards.overview import overview_page

    org = Organization.objects.get(slug="big")
    this_month = local_today(org, timezone.now()).replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Bearer kt_admin_bench_big")
    departments = list(Department.objects.filter(organization=org))
    for label, month in (("this month", this_month), ("last month", last_month)):
        scope = {"organization": org, "date_from": month, "date_to": month_end(month)}
        rows = [
            ("spend_total", lambda scope=scope: selectors.spend_total(**scope)),
            (
                "spend_by team",
                lambda scope=scope: selectors.spend_by(field="department__team_id", **scope),
            ),
            (
                "spend_by model",
                lambda scope=scope: selectors.spend_by(field="model_requested", **scope),
            ),
            (
                "GET /v1/spend?by=team",
                lambda month=month: api.get(f"/v1/spend?by=team&month={month:%Y-%m}"),
            ),
            (
                "/dashboard/ figures",
                lambda month=month: overview_page(
                    organization=org, departments=departments, month=month, full_access=True
                ),
            ),
        ]
        for name, fn in rows:
            median, times = median_ms(fn, runs)
            print(
                f"big   {name + ', ' + label:41} {median:8.1f}   runs {[round(t) for t in times]}"
            )


def insert_cost(count: int = 2000) -> None:
    """ms per one-row event INSERT (one statement each, as the gateway writes them) with the
    rollup trigger and without it, 2,000 in a transaction rolled back."""
    setup()
    from django.db import connection, transaction

    sql = (
        'INSERT INTO gateway_usageevent (organization_id, department_id, request_id, "user",'
        " tags, endpoint, provider, target_id, model_requested, model_served, stream,"
        " prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost, currency,"
        " usage_source, status, http_status, error_code, latency_ms, prompt_fingerprint,"
        " above_hold, saved, created_at) SELECT o.id, d.id, %s, 'u', '{}', 'chat.completions',"
        " 'openai', 'openai', 'gpt-4o', 'gpt-4o', false, 500, 200, 0, 0, 0.0123, 'USD',"
        " 'provider', 'ok', 200, '', 800, '', false, 0, now()"
        " FROM chargeback_organization o JOIN chargeback_department d ON d.organization_id = o.id"
        " WHERE o.slug = 'big' AND d.team_id = 'team_engineering'"
    )
    for attempt in range(3):  # alternating: this machine drifts
        for trigger in (True, False):
            with transaction.atomic(), connection.cursor() as cursor:
                if not trigger:
                    cursor.execute(
                        "ALTER TABLE gateway_usageevent DISABLE TRIGGER gateway_spend_insert"
                    )
                began = time.perf_counter()
                for n in range(count):
                    cursor.execute(sql, [f"insert-cost-{attempt}-{trigger}-{n}"])
                took = (time.perf_counter() - began) * 1000 / count
                transaction.set_rollback(True)
            print(
                f"round {attempt + 1}: one-row event INSERT, rollup trigger {'on ' if trigger else 'off'}: {took:.3f} ms"
            )


def drop() -> None:
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database_name()}"')
    print("dropped", database_name())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["build", "migrate", "time", "inserts", "drop"])
    parser.add_argument("--entries", type=int, default=1_500_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--label", default="after")
    args = parser.parse_args()
    if args.action == "build":
        build(args.entries)
    elif args.action == "migrate":
        migrate()
    elif args.action == "time":
        run_times(args.label, args.runs)
    elif args.action == "inserts":
        insert_cost()
    else:
        drop()


if __name__ == "__main__":
    main()
