"""A month with cache hits adds up everywhere to the cent: the ledger, the admin, the
dashboards, the spend API and the exports agree on the spend, on what the cache saved (its hits
less the cache price) and on what caching would still save, per department and model. The
traffic is real: the OpenAI and Anthropic SDKs through the gateway, on three days of May."""

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import anthropic
import openai
import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db.models import Sum
from django.test import Client

from chargeback.models import Membership
from chargeback.money import to_cents
from gateway.models import UsageEvent
from reports.admin_reconciliation import reconciliation_rows
from reports.exports.running import export_job_run
from reports.exports.services import export_job_create
from tests.conftest import bearer_client
from tests.factories import AdminTokenFactory, ConsumerGroupFactory, DepartmentFactory
from wallets.models import LedgerEntry

from .conftest import KEY, OUTSIDER_KEY, cache_on, fund

# Every app: the dashboards and the admin need users and sessions.
pytestmark = pytest.mark.django_db(transaction=True)

DAYS = [datetime(2026, 5, day, 10, tzinfo=UTC) for day in (3, 12, 24)]
MAY = {"date_from": date(2026, 5, 1), "date_to": date(2026, 5, 31)}
HIT_PRICE = Decimal("0.00015")


def _clients(live_server, key):
    return (
        openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=key, max_retries=0, timeout=20),
        anthropic.Anthropic(base_url=live_server.url, api_key=key, max_retries=0, timeout=20),
    )


def _ask(client, text, **extra):
    messages = [{"role": "user", "content": text}]
    return client.chat.completions.create(model="fake-chat", messages=messages, **extra)


@pytest.fixture
def month(gw, live_server, cache_store):
    """Engineering (free to share, cache on), support (cache on), legal (cache off: its repeats
    are what caching would save); the organization charges 0.00015 a hit. The outsider has its
    own cache and traffic on the same days."""
    support = DepartmentFactory(organization=gw.org, team_id="team_support", name="Support")
    legal = DepartmentFactory(organization=gw.org, team_id="team_legal", name="Legal")
    ConsumerGroupFactory(department=support, name="support", key="kt_cg_support_prod_0123")
    legal_group = ConsumerGroupFactory(department=legal, name="legal", key="kt_cg_legal_prod_0123")
    fund(support, "10.00")
    fund(legal, "10.00")
    # A dear model, so that every figure is worth some cents.
    gw.chat.input_per_mtok, gw.chat.output_per_mtok = Decimal("250"), Decimal("1000")
    gw.chat.save()
    cache_on(gw.org, hit_price=HIT_PRICE)
    cache_on(gw.org, group=legal_group, enabled=False)
    cache_on(gw.outsider_org)
    eng, eng_claude = _clients(live_server, KEY)
    sup, _ = _clients(live_server, "kt_cg_support_prod_0123")
    leg, _ = _clients(live_server, "kt_cg_legal_prod_0123")
    out, _ = _clients(live_server, OUTSIDER_KEY)
    for day in DAYS:
        with time_machine.travel(day, tick=True):
            for _ in range(3):
                _ask(eng, "Summarise the incident report")
                _ask(sup, "How do I reset my password?")
                _ask(sup, "Where is my invoice?", user="carol")
                _ask(leg, "Review this clause")
                list(_ask(eng, "Stream the release notes", stream=True))
                eng_claude.messages.create(
                    model="fake-chat",
                    max_tokens=16,
                    messages=[{"role": "user", "content": "Draft a reply"}],
                )
                out.chat.completions.create(
                    model="outsider-only",
                    messages=[{"role": "user", "content": "Summarise the incident report"}],
                )
            _ask(eng, "Summarise the incident report", extra_headers={"x-kt-cache": "bypass"})
            with pytest.raises(openai.InternalServerError):
                _ask(sup, "Fail please", extra_headers={"x-fake-fault": "500"})
    return {"support": support, "legal": legal}


def _csv(job):
    with default_storage.open(job.file.name, "rb") as fh:
        return list(csv.DictReader(io.StringIO(fh.read().decode("utf-8"), newline="")))


def _export(org, kind):
    job = export_job_create(organization=org, type=kind, format="csv", **MAY)
    job = export_job_run(job_id=job.id)
    assert job.status == "completed", job.error
    return job


def test_a_month_with_cache_hits_adds_up_everywhere(gw, month):
    org = gw.org
    events = UsageEvent.objects.filter(organization=org)
    hits = events.filter(status="cache_hit")
    assert hits.count() > 20
    assert events.filter(status="ok").count() > 10
    assert {e.cost for e in hits} == {HIT_PRICE}
    assert not hits.filter(department=month["legal"]).exists()

    # The ledger: what the wallets were charged in May, hits' cache price included.
    captured = -LedgerEntry.objects.filter(
        organization=org,
        kind="capture",
        created_at__gte=datetime(2026, 5, 1, tzinfo=UTC),
        created_at__lt=datetime(2026, 6, 1, tzinfo=UTC),
    ).aggregate(t=Sum("amount"))["t"]
    assert captured == events.aggregate(t=Sum("cost"))["t"]
    realised = sum((e.saved - e.cost for e in hits), Decimal(0))
    assert realised > 0
    spend, saved = to_cents(captured), to_cents(realised)

    # Exports.
    events_job = _export(org, "events")
    rows = _csv(events_job)
    assert len(rows) == events.count()
    assert sum(Decimal(r["cost"]) for r in rows) == captured
    hit_rows = [r for r in rows if r["status"] == "cache_hit"]
    assert sum(Decimal(r["saved"]) - Decimal(r["cost"]) for r in hit_rows) == realised
    totals = events_job.manifest["totals"]["USD"]
    assert totals["cost"] == str(spend)
    chargeback_job = _export(org, "chargeback")
    by_team = {r["team_id"]: r for r in _csv(chargeback_job)}
    totals = chargeback_job.manifest["totals"]["USD"]
    assert (totals["spend"], totals["cache_saved"]) == (str(spend), str(saved))
    assert totals["cache_hits"] == hits.count()
    assert by_team["team_legal"]["cache_saved"] == "0.00"
    assert Decimal(by_team["team_legal"]["cache_would_save"]) > 0
    assert int(by_team["team_support"]["failed_requests"]) == 3  # hits are not failures
    focus = _export(org, "focus").manifest["totals"]["USD"]
    assert focus["BilledCost"] == str(spend)

    # The dashboards.
    user = get_user_model().objects.create_user("finance", password="x")
    Membership.objects.create(user=user, organization=org, role=Membership.Role.FINANCE)
    browser = Client()
    browser.force_login(user)
    overview = browser.get("/dashboard/?month=2026-05").context
    assert (overview["total"], overview["cache_saved"]) == (spend, saved)
    rows_by_team = {r["team_id"]: r for r in overview["rows"]}
    for team_id, row in by_team.items():
        assert rows_by_team[team_id]["cache_saved"] == Decimal(row["cache_saved"])
        assert rows_by_team[team_id]["cache_hits"] == int(row["cache_hits"])
        assert rows_by_team[team_id]["cache_savings"] == Decimal(row["cache_would_save"])
        assert rows_by_team[team_id]["spend"] == Decimal(row["spend"])
    assert overview["cache_savings"] == Decimal(totals["cache_would_save"])

    # The spend API, by team and by model; the department page's model table.
    api_token = "kt_admin_acme_totals"
    AdminTokenFactory(organization=org, raw=api_token)
    api = bearer_client(api_token)
    by_team_api = api.get("/v1/spend", {"by": "team", "month": "2026-05"}).json()
    assert (by_team_api["total"], by_team_api["cache_saved"]) == (str(spend), str(saved))
    assert by_team_api["cache_would_save"] == totals["cache_would_save"]
    for row in by_team_api["rows"]:
        assert row["cache_saved"] == by_team[row["key"]]["cache_saved"]
        assert row["cache_would_save"] == by_team[row["key"]]["cache_would_save"]
    by_model = api.get("/v1/spend", {"by": "model", "month": "2026-05"}).json()
    assert by_model["cache_saved"] == str(saved)
    for row in by_model["rows"]:
        of_model = hits.filter(model_requested=row["key"])
        assert row["cache_saved"] == str(to_cents(sum((e.saved - e.cost for e in of_model), 0)))
        assert row["cache_hits"] == of_model.count()
    page = browser.get("/dashboard/departments/team_engineering/?month=2026-05").context
    caching = next(t for t in page["tables"] if t.name == "caching")
    engineering_hits = hits.filter(department=gw.department)
    assert sum(r["cache_saved"] for r in caching.rows) == page["cache_saved"]
    assert page["cache_saved"] == to_cents(
        sum((e.saved - e.cost for e in engineering_hits), Decimal(0))
    )
    assert page["cache_saved"] == Decimal(by_team["team_engineering"]["cache_saved"])
    download = browser.get(
        "/dashboard/departments/team_engineering/",
        {"month": "2026-05", "format": "csv", "table": "caching"},
    )
    downloaded = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert [Decimal(r["Cache saved"]) for r in downloaded] == [
        r["cache_saved"] for r in caching.rows
    ]

    # The admin: the events' totals for May, the departments' month (seen from May 31).
    superuser = get_user_model().objects.create_superuser("root", password="x")
    browser.force_login(superuser)
    listing = browser.get(
        "/admin/gateway/usageevent/",
        {"created_at__year": 2026, "created_at__month": 5, "organization__id__exact": org.pk},
    ).context["totals"]
    assert (listing["cost"], listing["cache_saved"]) == (spend, saved)
    assert listing["cache_hits"] == hits.count()
    with time_machine.travel(datetime(2026, 5, 31, 20, tzinfo=UTC), tick=False):
        departments = browser.get("/admin/chargeback/department/").context["cl"].result_list
    mine = {d.team_id: d for d in departments if d.organization_id == org.pk}
    for team_id, row in by_team.items():
        assert to_cents(mine[team_id].mtd_spend) == Decimal(row["spend"])
        assert to_cents(mine[team_id].mtd_cache_saved) == Decimal(row["cache_saved"])
        assert mine[team_id].cache_would_save == Decimal(row["cache_would_save"])

    # Reconciling against the provider's invoice: what the provider billed, not the cache price.
    with time_machine.travel(datetime(2026, 5, 31, 20, tzinfo=UTC), tick=False):
        (fake,) = [
            r
            for r in reconciliation_rows(organization=org, months=1)
            if r.provider == "fake" and r.month == date(2026, 5, 1)
        ]
    billed = events.exclude(status="cache_hit").aggregate(t=Sum("cost"))["t"]
    assert fake.recorded == to_cents(billed) < spend

    # The outsider's hits are its own.
    outsider_hits = UsageEvent.objects.filter(organization=gw.outsider_org, status="cache_hit")
    assert outsider_hits.count() == 8
    assert not set(outsider_hits.values_list("department_id", flat=True)) & {
        gw.department.pk,
        month["support"].pk,
        month["legal"].pk,
    }
