"""The scale benchmark's timings (bench/scale.py): each page through Django's test client in
this process, logged in as the organization's finance user (API calls with an admin token),
median of N runs against the issue's goal; the month export in a child process; the bytes each
request leaves in the event, hold and ledger tables."""

import resource
import time
from datetime import timedelta
from pathlib import Path

from bench.scale_data import window
from bench.timing import median_ms

PASSWORD = "bench-scale-password"  # a throwaway bench database
GOALS = {"dashboard": 150, "admin": 300, "api": 100, "job": 1000}


def line(name: str, median: float, goal_ms: float, times=(), note: str = "") -> str:
    verdict = "PASS" if median < goal_ms else "MISS"
    runs = " ".join(f"{t:.0f}" for t in times)
    return f"| {name} | {median:,.1f} ms | < {goal_ms:,.0f} ms | {verdict} | {runs}{note} |"


def run_times(runs: int) -> list[str]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from budgets.evaluation import budgets_evaluate_all
    from chargeback.models import Organization
    from wallets.models import Wallet

    _, now = window()
    this_month = now.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    some_month = (last_month - timedelta(days=100)).replace(day=1)
    rows = []
    for slug in ("big", "small"):
        org = Organization.objects.get(slug=slug)
        web = Client()
        assert web.login(username=f"finance_{slug}", password=PASSWORD)
        api = Client(headers={"authorization": f"Bearer kt_admin_bench_{slug}"})
        eng = org.departments.get(team_id="team_engineering")
        tail = org.departments.order_by("-id").first()
        wallet = Wallet.objects.get(organization=org, department=eng)
        lm, sm = f"{last_month:%Y-%m}", f"{some_month:%Y-%m}"
        pages = [
            ("dashboard", "/dashboard/ (this month)", web, f"/dashboard/?month={this_month:%Y-%m}"),
            ("dashboard", "/dashboard/ (last month)", web, f"/dashboard/?month={lm}"),
            ("dashboard", f"/dashboard/ ({sm})", web, f"/dashboard/?month={sm}"),
            (
                "dashboard",
                "/dashboard/ CSV (departments)",
                web,
                f"/dashboard/?month={lm}&format=csv",
            ),
            (
                "dashboard",
                "/dashboard/ CSV (months)",
                web,
                f"/dashboard/?month={lm}&format=csv&table=months",
            ),
            (
                "dashboard",
                "department dashboard, engineering, last month",
                web,
                f"/dashboard/departments/team_engineering/?month={lm}",
            ),
            (
                "dashboard",
                f"department dashboard, {tail.team_id}, {sm}",
                web,
                f"/dashboard/departments/{tail.team_id}/?month={sm}",
            ),
            (
                "dashboard",
                "department dashboard CSV, engineering",
                web,
                f"/dashboard/departments/team_engineering/?month={lm}&format=csv",
            ),
            ("admin", "admin: departments", web, "/admin/chargeback/department/"),
            ("admin", "admin: wallets", web, "/admin/wallets/wallet/"),
            (
                "admin",
                "admin: one wallet (engineering)",
                web,
                f"/admin/wallets/wallet/{wallet.pk}/change/",
            ),
            ("admin", "admin: usage events, unfiltered", web, "/admin/gateway/usageevent/"),
            (
                "admin",
                "admin: usage events, department + month",
                web,
                (
                    f"/admin/gateway/usageevent/?department__id__exact={eng.pk}"
                    f"&created_at__year={last_month.year}&created_at__month={last_month.month}"
                ),
            ),
            ("admin", "admin: ledger", web, "/admin/wallets/ledgerentry/"),
            (
                "admin",
                "admin: reconciliation",
                web,
                "/admin/reports/providerinvoice/reconciliation/",
            ),
            ("admin", "admin: budgets", web, "/admin/budgets/budget/"),
            ("api", "GET /v1/spend?by=team (last month)", api, f"/v1/spend?by=team&month={lm}"),
            ("api", "GET /v1/spend?by=model (last month)", api, f"/v1/spend?by=model&month={lm}"),
            ("api", "GET /v1/spend?by=user (last month)", api, f"/v1/spend?by=user&month={lm}"),
            ("api", "GET /v1/wallets", api, "/v1/wallets"),
            ("api", "GET /v1/budgets", api, "/v1/budgets"),
        ]
        rows.append(f"| **{slug}** organization | | | | |")
        for kind, name, client, path in pages:

            def get(client=client, path=path):
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)
                if getattr(response, "streaming", False):
                    b"".join(response.streaming_content)

            median, times = median_ms(get, runs)
            rows.append(line(name, median, GOALS[kind], times))
            print(rows[-1], flush=True)
    budgets_evaluate_all()  # the first run files the alerts due; later ones are the steady state
    with CaptureQueriesContext(connection) as queries:
        budgets_evaluate_all()
    median, times = median_ms(budgets_evaluate_all, runs)
    rows.append(
        line("hourly evaluation, every budget and wallet", median, GOALS["job"], times,
             f" ({len(queries)} queries)")
    )  # fmt: skip
    print(rows[-1], flush=True)
    return rows


def month_export(slug: str) -> dict:
    """One CSV export of the organization's last full month, in this (fresh) process."""
    from django.conf import settings

    from chargeback.models import Organization
    from chargeback.periods import month_end
    from reports.exports.running import export_job_run
    from reports.models import ExportJob

    settings.MEDIA_ROOT = "/tmp/kt-scale-bench-media"
    _, now = window()
    month = (now.replace(day=1) - timedelta(days=1)).replace(day=1).date()
    job = ExportJob.objects.create(
        organization=Organization.objects.get(slug=slug),
        type="events",
        format="csv",
        date_from=month,
        date_to=month_end(month),
        requested_by="bench",
    )
    # A forked child starts with its parent's peak (ru_maxrss survives fork and exec): reset
    # the kernel's peak RSS (VmHWM) so the figure is this export's own.
    Path("/proc/self/clear_refs").write_text("5")
    began = time.monotonic()
    job = export_job_run(job_id=job.id)
    wall = time.monotonic() - began
    assert job.status == "completed", job.error
    result = {
        "month": f"{month:%Y-%m}",
        "rows": job.rows_written,
        "seconds": round(wall, 1),
        "peak_rss_mb": round(peak_rss_kb() / 1024, 1),
    }
    job.file.delete(save=False)
    return result


def peak_rss_kb() -> int:
    """The process's peak RSS since the last reset (VmHWM, kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bytes_per_request() -> tuple[float, int, dict]:
    from django.db import connection

    # The events' month partitions count under the table's name, and so does the table of request
    # ids that keeps one event per request (gateway 0014).
    tables = ("gateway_usageevent", "wallets_hold", "wallets_ledgerentry")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM gateway_usageevent")
        (events,) = cursor.fetchone()
        cursor.execute(
            "SELECT c.relname, sum(pg_total_relation_size(p.oid)) FROM pg_class c JOIN pg_class p"
            " ON p.oid = c.oid OR p.oid IN (SELECT relid FROM pg_partition_tree(c.oid))"
            " OR p.relname = c.relname || '_request'"
            " WHERE c.relname = ANY(%s) GROUP BY c.relname",
            [list(tables)],
        )
        sizes = {name: int(size) for name, size in cursor.fetchall()}
    return sum(sizes.values()) / events, events, sizes
