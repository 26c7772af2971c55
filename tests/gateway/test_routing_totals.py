"""A month with failovers, downgrades and cache hits, through the live gateway: the admin's department
spend, the department dashboard (spend, what the policies and the cache saved), the events and chargeback
exports and the ledger's captures agree to the cent, and the outsider's spend is in none."""

import csv
import io
from decimal import Decimal

import openai
import pytest
from django.core.files.storage import default_storage
from django.db.models import Sum

from chargeback.models import Department
from chargeback.money import to_cents
from chargeback.periods import local_today, month_start
from gateway.models import UsageEvent
from reports.admin_columns import annotate_departments
from reports.dashboards.department import department_page
from reports.exports.running import export_job_run
from reports.exports.services import export_job_create
from tests.factories import PriceFactory
from wallets.models import LedgerEntry

from .conftest import OUTSIDER_KEY, cache_on, live_db
from .routing_setup import FALLBACK, HELLO, configure, fail, two_targets
from .test_routing_policies import policy

pytestmark = live_db

CACHED = [{"role": "user", "content": "Asked twice: the second is answered from the cache"}]


def _export(org, kind, month, today):
    job = export_job_create(organization=org, type=kind, date_from=month, date_to=today)
    job = export_job_run(job_id=job.id)
    assert job.status == "completed", job.error
    with default_storage.open(job.file.name, "rb") as fh:
        rows = list(csv.DictReader(io.StringIO(fh.read().decode("utf-8"), newline="")))
    return job, rows


@pytest.fixture
def month_of_routing(gw, oai, claude, fake_pair, live_server, cache_store):
    """Plain calls, failovers (reply, stream, message), downgrades, a cached reply and its hit,
    a call every target refused, and the outsider's spend on the side."""
    PriceFactory(
        model="fake-mini", input_per_mtok=Decimal("0.100000"), output_per_mtok=Decimal("0.400000")
    )
    PriceFactory(
        model="fake-premium",
        input_per_mtok=Decimal("15.000000"),
        output_per_mtok=Decimal("60.000000"),
        premium=True,
    )
    two_targets(gw, fake_pair, primary_models=(), backup_models=())
    configure(
        gw,
        fallback=FALLBACK,
        routing_policies=[
            policy(max_price_per_mtok="20", on_over_price="downgrade", downgrade_to="fake-mini")
        ],
    )
    for _ in range(3):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)
    fail(gw, "primary", "500")
    oai.chat.completions.create(model="fake-chat", messages=HELLO)
    list(oai.chat.completions.create(model="fake-chat", messages=HELLO, stream=True))
    claude.messages.create(model="fake-chat", max_tokens=30, messages=HELLO)
    for _ in range(2):
        oai.chat.completions.create(model="fake-premium", messages=HELLO)  # downgraded
    cache_on(gw.org)
    for _ in range(2):  # the backup serves the miss (the primary still fails), then a hit
        oai.chat.completions.create(model="fake-chat", messages=CACHED)
    fail(gw, "backup", "500")
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)
    outsider = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=OUTSIDER_KEY, max_retries=0, timeout=20
    )
    outsider.chat.completions.create(model="outsider-only", messages=HELLO)
    return gw


def test_admin_dashboard_exports_and_ledger_agree_to_the_cent(month_of_routing):
    gw = month_of_routing
    org = gw.org
    today = local_today(org)
    month = month_start(today)
    events = list(UsageEvent.objects.filter(organization=org))
    assert len(events) == 11
    # Six served by the backup after the primary failed (two of them downgraded), one by nobody.
    assert sum(1 for e in events if e.attempts) == 7
    assert sum(1 for e in events if e.policy) == 2
    (hit,) = [e for e in events if e.status == "cache_hit"]
    assert (hit.cost, hit.saved > 0) == (0, True)
    captured = -LedgerEntry.objects.filter(organization=org, kind="capture").aggregate(
        s=Sum("amount")
    )["s"]
    assert captured == sum(e.cost for e in events)
    saved = sum(e.policy_saved for e in events)
    assert saved > 0

    (department,) = annotate_departments(
        Department.objects.filter(organization=org), organizations=[org]
    )
    assert to_cents(department.mtd_spend) == to_cents(captured)

    page = department_page(organization=org, department=gw.department, month=month, as_of=today)
    assert page["spend"] == to_cents(captured)
    assert page["policy_saved"] == to_cents(saved)
    assert page["policy_requests"] == 2
    policies = next(t for t in page["tables"] if t.name == "policies")
    assert [(r["policy"], r["requests"]) for r in policies.rows] == [("routine", 2)]
    assert policies.footer["saved"] == to_cents(saved)
    assert (page["cache_hits"], page["cache_saved"]) == (1, to_cents(hit.saved))

    events_job, rows = _export(org, "events", month, today)
    assert sum(Decimal(r["cost"]) for r in rows) == captured
    assert sum(Decimal(r["policy_saved"]) for r in rows) == saved
    assert sum(Decimal(r["saved"]) for r in rows) == hit.saved
    assert {r["request_id"] for r in rows} == {e.request_id for e in events}
    assert sorted(r["policy"] for r in rows if r["policy"]) == ["routine:max_price"] * 2
    assert events_job.manifest["totals"]["USD"]["cost"] == str(to_cents(captured))
    chargeback_job, by_team = _export(org, "chargeback", month, today)
    assert chargeback_job.manifest["totals"]["USD"]["spend"] == str(to_cents(captured))
    assert [(r["team_id"], Decimal(r["spend"])) for r in by_team] == [
        ("team_engineering", to_cents(captured))
    ]
