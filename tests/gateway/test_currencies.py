"""An EUR organization calling models priced in USD, through the live gateway and the fake
provider: the hold and the capture are converted at the rate in force when the request is
priced, the event keeps the three figures, the ledger equals the events, a rate added later
applies to later requests only, and a missing rate is a 400 with nothing held."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import httpx
import openai
import pytest
from django.core.files.storage import default_storage
from django.db.models import Sum
from django.utils import timezone

from chargeback.models import Department
from chargeback.money import convert, to_cents
from chargeback.periods import local_today, month_start
from gateway.estimate import prompt_upper_bound
from gateway.exchange import exchange_rate_create
from gateway.models import UsageEvent
from gateway.pricing import Usage, cost_of, worst_case_cost
from reports.admin_columns import annotate_departments
from reports.dashboards.department import department_page
from reports.exports.running import export_job_run
from reports.exports.services import export_job_create
from tests.factories import (
    ConsumerGroupFactory,
    DepartmentFactory,
    OrganizationFactory,
    PriceFactory,
    ProviderTargetFactory,
)
from wallets import services
from wallets.models import Hold, LedgerEntry

from .conftest import live_db

pytestmark = live_db

KEY = "kt_cg_paris_prod"
HELLO = [{"role": "user", "content": "Combien coûte un appel ?"}]
RATE = Decimal("0.9213000000")


@pytest.fixture
def paris(fake_provider, live_server):
    """An EUR organization with a 10 EUR team wallet; the model is priced in USD."""
    live_server.thread.httpd.socket.listen(1024)
    org = OrganizationFactory(name="Paris", slug="paris", currency="EUR")
    department = DepartmentFactory(organization=org, team_id="team_paris")
    ConsumerGroupFactory(department=department, name="paris", key=KEY)
    ProviderTargetFactory(
        organization=org, target_id="fake", provider="fake", base_url=fake_provider
    )
    price = PriceFactory(model="fake-chat", max_output_tokens=1000, currency="USD")
    services.wallet_allocate(department=department, amount=Decimal("10.00"), currency="EUR")
    wallet = services.wallet_for_team(department=department)
    assert wallet.currency == "EUR"
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=KEY, max_retries=0, timeout=20)
    return org, department, wallet, price, client


def _rate(org, rate, *, at=None):
    return exchange_rate_create(
        organization=org,
        from_currency="USD",
        to_currency="EUR",
        rate=rate,
        effective_from=at or timezone.now() - timedelta(days=40),
        actor="test",
        via="api",
    )


def _usage(event):
    return Usage(prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens)


def test_a_chat_call_is_held_and_captured_in_the_wallets_currency(paris):
    org, _department, wallet, price, client = paris
    _rate(org, RATE)
    reply = client.chat.completions.with_raw_response.create(
        model="fake-chat", messages=HELLO, max_tokens=50
    )
    assert reply.http_response.status_code == 200

    event = UsageEvent.objects.get(organization=org)
    usd = cost_of(price, _usage(event))
    assert usd > 0
    assert (event.price_currency, event.price_cost, event.exchange_rate) == ("USD", usd, RATE)
    assert (event.currency, event.cost) == ("EUR", convert(usd, RATE))
    assert event.cost != usd  # converted, not the dollar figure
    assert reply.http_response.headers["x-kt-cost"] == f"{event.cost:f}"

    hold = Hold.objects.get(request_id=event.request_id)
    body = {"model": "fake-chat", "messages": HELLO, "max_tokens": 50}
    bound = prompt_upper_bound(body, context_window=price.context_window)
    worst_usd = worst_case_cost(price, prompt_upper_tokens=bound, max_output_tokens=50)
    assert hold.amount == convert(worst_usd, RATE)
    assert (hold.status, hold.captured_amount) == ("captured", event.cost)
    (entry,) = LedgerEntry.objects.filter(wallet=wallet, kind="capture")
    assert (entry.amount, entry.currency) == (-event.cost, "EUR")
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal("10.00") - event.cost, 0)


def test_a_stream_is_converted_the_same_way(paris):
    org, _department, wallet, price, client = paris
    _rate(org, RATE)
    chunks = list(
        client.chat.completions.create(
            model="fake-chat", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks
    event = UsageEvent.objects.get(organization=org)
    assert event.stream
    assert event.cost == convert(cost_of(price, _usage(event)), RATE)
    assert event.exchange_rate == RATE
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("10.00") - event.cost


def test_a_rate_added_later_applies_only_to_later_requests(paris):
    org, _department, wallet, price, client = paris
    _rate(org, Decimal("0.90"))
    # A rate starting tomorrow changes nothing today.
    _rate(org, Decimal("0.50"), at=timezone.now() + timedelta(days=1))
    client.chat.completions.create(model="fake-chat", messages=HELLO)
    _rate(org, Decimal("0.95"), at=timezone.now())  # in force from now on
    client.chat.completions.create(model="fake-chat", messages=HELLO)

    first, second = UsageEvent.objects.filter(organization=org).order_by("created_at", "id")
    assert (first.exchange_rate, second.exchange_rate) == (Decimal("0.90"), Decimal("0.95"))
    for event in (first, second):
        assert event.cost == convert(event.price_cost, event.exchange_rate)
        assert event.price_cost == cost_of(price, _usage(event))
    captured = -LedgerEntry.objects.filter(wallet=wallet, kind="capture").aggregate(
        s=Sum("amount")
    )["s"]
    assert captured == first.cost + second.cost


def test_the_organizations_own_rate_wins_over_the_shared_table(paris):
    org, _department, _wallet, _price, client = paris
    exchange_rate_create(
        organization=None,
        from_currency="USD",
        to_currency="EUR",
        rate=Decimal("0.80"),
        effective_from=timezone.now() - timedelta(days=1),
        actor="test",
        via="admin",
    )
    client.chat.completions.create(model="fake-chat", messages=HELLO)
    _rate(org, Decimal("0.93"))
    client.chat.completions.create(model="fake-chat", messages=HELLO)
    rates = list(
        UsageEvent.objects.filter(organization=org)
        .order_by("created_at", "id")
        .values_list("exchange_rate", flat=True)
    )
    assert rates == [Decimal("0.80"), Decimal("0.93")]


def test_a_missing_rate_is_a_400_and_nothing_is_held(paris, live_server):
    org, _department, wallet, _price, client = paris
    _rate(org, RATE)
    # GBP, not EUR: no USD->GBP rate exists.
    org.currency = "GBP"
    org.save(update_fields=["currency"])
    wallet.currency = "GBP"
    wallet.save(update_fields=["currency"])
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="fake-chat", messages=HELLO)
    error = caught.value.body
    assert error["code"] == "exchange_rate_missing"
    assert "USD to GBP" in error["message"]
    assert caught.value.response.status_code == 400
    assert not Hold.objects.filter(organization=org).exists()
    assert not UsageEvent.objects.filter(organization=org).exists()
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal("10.00"), 0)


def test_without_enforcement_a_missing_rate_records_the_cost_unconverted(paris):
    org, _department, wallet, price, client = paris
    org.wallet_enforcement = False
    org.save(update_fields=["wallet_enforcement"])
    client.chat.completions.create(model="fake-chat", messages=HELLO)
    event = UsageEvent.objects.get(organization=org)
    assert event.exchange_rate is None
    assert event.price_cost is None
    assert (event.cost, event.currency) == (cost_of(price, _usage(event)), "USD")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("10.00") - event.cost


def test_same_currency_events_have_no_conversion(paris):
    org, department, _wallet, _price, _client = paris
    PriceFactory(model="fake-euro", currency="EUR")
    r = httpx.post(
        f"{_client.base_url}chat/completions",
        json={"model": "fake-euro", "messages": HELLO},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    event = UsageEvent.objects.get(organization=org)
    assert (event.currency, event.price_currency, event.exchange_rate) == ("EUR", None, None)
    assert event.department == department


def _export(org, kind, month, today):
    job = export_job_create(organization=org, type=kind, date_from=month, date_to=today)
    job = export_job_run(job_id=job.id)
    assert job.status == "completed", job.error
    with default_storage.open(job.file.name, "rb") as fh:
        rows = list(csv.DictReader(io.StringIO(fh.read().decode("utf-8"), newline="")))
    return job, rows


def test_admin_dashboard_spend_api_and_exports_agree_to_the_cent_in_euros(paris, live_server):
    org, department, _wallet, _price, client = paris
    _rate(org, Decimal("0.9213"))
    for n in range(7):
        client.chat.completions.create(model="fake-chat", messages=HELLO, max_tokens=20 + n)
    _rate(org, Decimal("0.8777"), at=timezone.now())
    for _ in range(4):
        list(client.chat.completions.create(model="fake-chat", messages=HELLO, stream=True))
    events = list(UsageEvent.objects.filter(organization=org))
    assert len(events) == 11
    assert {e.exchange_rate for e in events} == {Decimal("0.9213"), Decimal("0.8777")}
    assert {e.currency for e in events} == {"EUR"}
    captured = -LedgerEntry.objects.filter(organization=org, kind="capture").aggregate(
        s=Sum("amount")
    )["s"]
    assert captured == sum(e.cost for e in events)
    today = local_today(org)
    month = month_start(today)

    (row,) = annotate_departments(Department.objects.filter(organization=org), organizations=[org])
    assert to_cents(row.mtd_spend) == to_cents(captured)
    page = department_page(organization=org, department=department, month=month, as_of=today)
    assert page["spend"] == to_cents(captured)

    spend = httpx.get(
        f"{live_server.url}/v1/spend?by=team",
        headers={"Authorization": f"Bearer {admin_token_for(org)}"},
        timeout=10,
    ).json()
    assert (spend["currency"], spend["total"]) == ("EUR", str(to_cents(captured)))

    job, rows = _export(org, "events", month, today)
    assert sum(Decimal(r["cost"]) for r in rows) == captured
    assert job.manifest["totals"]["EUR"]["cost"] == str(to_cents(captured))
    assert "USD" not in job.manifest["totals"]
    for r in rows:
        assert r["price_currency"] == "USD"
        assert r["currency"] == "EUR"
        assert convert(Decimal(r["price_cost"]), Decimal(r["exchange_rate"])) == Decimal(r["cost"])
    chargeback_job, by_team = _export(org, "chargeback", month, today)
    assert [(r["team_id"], Decimal(r["spend"])) for r in by_team] == [
        ("team_paris", to_cents(captured))
    ]
    assert chargeback_job.manifest["totals"]["EUR"]["spend"] == str(to_cents(captured))


def admin_token_for(org) -> str:
    from tests.factories import AdminTokenFactory

    raw = "kt_admin_paris_test"
    AdminTokenFactory(organization=org, raw=raw)
    return raw
