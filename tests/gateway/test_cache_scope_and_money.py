"""Whose entries a request may read (consumer group, organization, end user; never another
organization's), and what a hit costs: nothing, or the organization's cache price; `saved` at
the price in force."""

from decimal import Decimal

import anthropic
import openai
import pytest

from gateway import prices
from gateway.cache import clear_all
from gateway.models import Price, UsageEvent
from tests.factories import ConsumerGroupFactory, DepartmentFactory, PriceFactory
from wallets.models import Hold, LedgerEntry
from wallets.services import hold_place

from .conftest import OUTSIDER_KEY, cache_on, fund, live_db

pytestmark = live_db

QUESTION = [{"role": "user", "content": "How do I reset my password?"}]
SUPPORT_KEY = "kt_cg_support_prod_0123"


@pytest.fixture
def support(gw, live_server):
    """A second department and group of the same organization, with its own wallet."""
    department = DepartmentFactory(organization=gw.org, team_id="team_support", name="Support")
    group = ConsumerGroupFactory(department=department, name="support", key=SUPPORT_KEY)
    wallet = fund(department, "5.00")
    client = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=SUPPORT_KEY, max_retries=0, timeout=20
    )
    return department, group, wallet, client


def _ask(client, model="fake-chat", **extra):
    return client.chat.completions.with_raw_response.create(model=model, messages=QUESTION, **extra)


def test_consumer_groups_do_not_share_entries_by_default(gw, oai, support, cache_store):
    cache_on(gw.org)
    _, _, _, support_client = support
    assert _ask(oai).headers["x-kt-cache"] == "miss"
    assert _ask(support_client).headers["x-kt-cache"] == "miss"
    assert _ask(support_client).headers["x-kt-cache"] == "hit"
    assert [e.status for e in UsageEvent.objects.order_by("id")] == ["ok", "ok", "cache_hit"]


def test_an_organization_that_shares_entries_serves_one_groups_reply_to_another(
    gw, oai, support, cache_store
):
    cache_on(gw.org, scope="organization")
    department, group, wallet, support_client = support
    assert _ask(oai).headers["x-kt-cache"] == "miss"
    hit = _ask(support_client)
    assert hit.headers["x-kt-cache"] == "hit"
    paid, shared = UsageEvent.objects.order_by("id")
    assert (shared.status, shared.department, shared.consumer_group) == (
        "cache_hit",
        department,
        group,
    )
    assert shared.saved == paid.cost > 0
    assert shared.cost == 0
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("5.00")  # the support department paid nothing


def test_a_group_may_keep_its_own_entries_in_an_organization_that_shares(
    gw, oai, support, cache_store
):
    cache_on(gw.org, scope="organization")
    _, group, _, support_client = support
    cache_on(gw.org, group=group, scope="consumer_group")
    _ask(oai)
    assert _ask(support_client).headers["x-kt-cache"] == "miss"


def test_with_scope_user_each_end_user_has_their_own_entries(gw, oai, cache_store):
    cache_on(gw.org, scope="user")
    assert _ask(oai, user="alice").headers["x-kt-cache"] == "miss"
    assert _ask(oai, user="alice").headers["x-kt-cache"] == "hit"
    assert _ask(oai, user="bob").headers["x-kt-cache"] == "miss"
    assert _ask(oai, extra_headers={"X-KT-User": "bob"}).headers["x-kt-cache"] == "hit"


def test_no_entry_is_ever_served_to_another_organization(gw, oai, live_server, cache_store):
    """Both organizations share entries between their own groups, ask the same model of a
    target with the same id, with the same question: the outsider never gets Acme's reply."""
    PriceFactory(model="outsider-only")  # the default catalog: Acme may call it too
    cache_on(gw.org, scope="organization")
    cache_on(gw.outsider_org, scope="organization")
    outsider = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=OUTSIDER_KEY, max_retries=0, timeout=20
    )
    assert _ask(oai, model="outsider-only").headers["x-kt-cache"] == "miss"
    assert _ask(outsider, model="outsider-only").headers["x-kt-cache"] == "miss"
    assert _ask(outsider, model="outsider-only").headers["x-kt-cache"] == "hit"
    by_org = {(e.organization_id, e.status) for e in UsageEvent.objects.filter(status="cache_hit")}
    assert by_org == {(gw.outsider_org.pk, "cache_hit")}
    claude = anthropic.Anthropic(
        base_url=live_server.url, api_key=OUTSIDER_KEY, max_retries=0, timeout=20
    )
    raw = claude.messages.with_raw_response.create(
        model="outsider-only", max_tokens=10, messages=QUESTION
    )
    assert raw.headers["x-kt-cache"] == "miss"


def test_a_hit_costs_the_organizations_cache_price_when_it_has_one(gw, oai, cache_store):
    cache_on(gw.org, hit_price=Decimal("0.0002"))
    _ask(oai)
    hit = _ask(oai)
    assert hit.headers["x-kt-cache"] == "hit"
    assert Decimal(hit.headers["x-kt-cost"]) == Decimal("0.0002")
    paid, event = UsageEvent.objects.order_by("id")
    assert (event.status, event.cost, event.saved) == ("cache_hit", Decimal("0.0002"), paid.cost)
    hold = Hold.objects.get(request_id=event.request_id)
    assert (hold.amount, hold.status, hold.captured_amount) == (
        Decimal("0.0002"),
        "captured",
        Decimal("0.0002"),
    )
    wallet = gw.refresh()
    assert wallet.balance == Decimal("10.00") - paid.cost - Decimal("0.0002")
    assert wallet.held == 0
    assert LedgerEntry.objects.filter(kind="capture").count() == 2


def test_a_priced_hit_the_wallet_cannot_cover_is_refused_with_402(gw, oai, cache_store):
    cache_on(gw.org, hit_price=Decimal("50"))
    _ask(oai)
    with pytest.raises(openai.APIStatusError) as refused:
        _ask(oai)
    assert refused.value.status_code == 402
    assert [e.status for e in UsageEvent.objects.order_by("id")] == ["ok", "rejected"]
    assert LedgerEntry.objects.filter(kind="capture").count() == 1


def test_a_free_hit_is_served_even_when_the_wallet_could_not_cover_a_call(gw, oai, cache_store):
    cache_on(gw.org)
    _ask(oai)
    wallet = gw.refresh()
    hold_place(wallet=wallet, amount=wallet.available, request_id="req_everything_held")
    with pytest.raises(openai.APIStatusError) as refused:
        _ask(oai, temperature=0.5)  # a miss needs a hold: refused
    assert refused.value.status_code == 402
    assert _ask(oai).headers["x-kt-cache"] == "hit"


def test_saved_is_what_the_call_would_cost_at_the_price_in_force_now(gw, oai, cache_store):
    cache_on(gw.org)
    _ask(oai)
    old = Price.objects.get(pk=gw.chat.pk)
    new = prices.price_update(
        price=old, input_per_mtok=Decimal("5.000000"), actor="test", via="admin"
    )
    assert new.pk != old.pk
    clear_all()
    _ask(oai)
    paid, hit = UsageEvent.objects.order_by("id")
    assert hit.price_id == new.pk
    expected = (
        Decimal(hit.prompt_tokens) * Decimal("5") + Decimal(hit.completion_tokens) * Decimal("10")
    ) / 1_000_000
    assert hit.saved == expected.quantize(Decimal("0.00000001"))
    assert hit.saved > paid.cost
