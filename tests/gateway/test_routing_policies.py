"""Routing policies per consumer group or department: aliases, a price cap (refused or
downgraded), premium models for listed groups only, a monthly premium share cap. The event
records the model requested and served, the policy that changed it and what that saved."""

from decimal import Decimal

import openai
import pytest
from django.utils import timezone

from gateway.models import UsageEvent
from gateway.policies import policy_shares_clear
from gateway.pricing import Usage, cost_of
from tests.factories import ConsumerGroupFactory, PriceFactory
from wallets.models import Hold

from .conftest import OUTSIDER_KEY, live_db
from .routing_setup import HELLO, charged_once, configure

pytestmark = live_db

LEGAL_KEY = "kt_cg_legal_prod_test"


@pytest.fixture(autouse=True)
def _shares_forgotten():
    policy_shares_clear()
    yield
    policy_shares_clear()


@pytest.fixture
def models(gw):
    """fake-chat (2.50/10.00 per million tokens), a cheap fake-mini, a premium fake-premium."""
    mini = PriceFactory(
        model="fake-mini", input_per_mtok=Decimal("0.100000"), output_per_mtok=Decimal("0.400000")
    )
    premium = PriceFactory(
        model="fake-premium",
        input_per_mtok=Decimal("15.000000"),
        output_per_mtok=Decimal("60.000000"),
        premium=True,
    )
    return {"chat": gw.chat, "mini": mini, "premium": premium}


def policy(name="routine", **rules) -> dict:
    base = {
        "name": name,
        "consumer_groups": [],
        "departments": [],
        "aliases": {},
        "max_price_per_mtok": None,
        "on_over_price": "refuse",
        "premium_groups": None,
        "premium_monthly_share_cap": None,
        "downgrade_to": "",
    }
    return {**base, **rules}


def _event() -> UsageEvent:
    (event,) = UsageEvent.objects.all()
    return event


def test_an_alias_names_a_cheap_model(gw, oai, models):
    configure(gw, routing_policies=[policy(aliases={"drafting": "fake-mini"})])

    reply = oai.chat.completions.create(model="drafting", messages=HELLO)

    assert reply.model == "fake-mini"
    event = _event()
    assert (event.model_requested, event.model_served) == ("drafting", "fake-mini")
    assert (event.policy, event.price_id) == ("routine:alias", models["mini"].pk)
    usage = Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens)
    assert event.cost == cost_of(models["mini"], usage)
    assert event.policy_saved == 0  # an alias replaces no priced model
    charged_once(gw.wallet, "10.00")


def test_a_model_over_the_price_cap_is_refused_with_a_clear_400(gw, oai, models):
    configure(gw, routing_policies=[policy(max_price_per_mtok="5")])

    with pytest.raises(openai.BadRequestError) as exc:
        oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert exc.value.body["code"] == "model_over_price_cap"
    assert exc.value.body["message"] == (
        "The model `fake-chat` costs 10 per million tokens, above the 5 that routing policy "
        "routine allows consumer group engineering."
    )
    assert not UsageEvent.objects.exists()
    assert not Hold.objects.exists()
    oai.chat.completions.create(model="fake-mini", messages=HELLO)  # under the cap: served


def test_a_model_over_the_price_cap_is_downgraded_and_the_event_says_what_that_saved(
    gw, oai, models
):
    configure(
        gw,
        routing_policies=[
            policy(max_price_per_mtok="5", on_over_price="downgrade", downgrade_to="fake-mini")
        ],
    )

    reply = oai.chat.completions.create(model="fake-chat", messages=HELLO)

    event = _event()
    assert (event.model_requested, event.model_served, event.policy) == (
        "fake-chat",
        "fake-mini",
        "routine:max_price",
    )
    usage = Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens)
    assert event.cost == cost_of(models["mini"], usage)
    assert event.policy_saved == cost_of(models["chat"], usage) - event.cost
    assert event.policy_saved > 0
    charged_once(gw.wallet, "10.00")


def test_premium_models_are_for_the_listed_groups_and_the_others_are_downgraded(
    gw, oai, models, live_server
):
    ConsumerGroupFactory(department=gw.department, name="legal", key=LEGAL_KEY)
    configure(
        gw,
        routing_policies=[
            policy(
                departments=["team_engineering"],
                premium_groups=["legal"],
                downgrade_to="fake-mini",
            )
        ],
    )
    legal = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=LEGAL_KEY, max_retries=0, timeout=20
    )

    assert oai.chat.completions.create(model="fake-premium", messages=HELLO).model == "fake-mini"
    assert legal.chat.completions.create(model="fake-premium", messages=HELLO).model == (
        "fake-premium"
    )

    events = UsageEvent.objects.order_by("id")
    assert [(e.consumer_group.name, e.model_served, e.policy) for e in events] == [
        ("engineering", "fake-mini", "routine:premium_group"),
        ("legal", "fake-premium", ""),
    ]
    assert events[0].policy_saved > 0
    assert events[1].policy_saved == 0


def test_without_a_downgrade_a_premium_model_is_refused(gw, oai, models):
    configure(gw, routing_policies=[policy(premium_groups=["legal-team"])])

    with pytest.raises(openai.BadRequestError) as exc:
        oai.chat.completions.create(model="fake-premium", messages=HELLO)

    assert exc.value.body["code"] == "premium_model_not_allowed"
    assert "legal-team" in exc.value.body["message"]


def _spent(gw, price, cost: str):
    UsageEvent.objects.create(
        organization=gw.org,
        department=gw.department,
        consumer_group=gw.group,
        request_id=f"req_past_{price.model}",
        endpoint="chat.completions",
        provider="fake",
        model_requested=price.model,
        cost=Decimal(cost),
        price=price,
        created_at=timezone.now(),
    )


@pytest.mark.parametrize(("cap", "served"), [("40", "fake-mini"), ("60", "fake-premium")])
def test_the_monthly_premium_share_cap_downgrades_once_it_is_reached(gw, oai, models, cap, served):
    _spent(gw, models["premium"], "5.00")  # half of this month's spend on premium models
    _spent(gw, models["chat"], "5.00")
    configure(
        gw,
        routing_policies=[policy(premium_monthly_share_cap=cap, downgrade_to="fake-mini")],
    )

    reply = oai.chat.completions.create(model="fake-premium", messages=HELLO)

    assert reply.model == served
    event = UsageEvent.objects.exclude(request_id__startswith="req_past").get()
    assert event.policy == ("routine:premium_share_cap" if served == "fake-mini" else "")


def test_a_groups_own_policy_wins_over_its_departments(gw, oai, models):
    configure(
        gw,
        routing_policies=[
            policy("department", departments=["team_engineering"], aliases={"x": "fake-chat"}),
            policy("group", consumer_groups=["engineering"], aliases={"x": "fake-mini"}),
        ],
    )

    assert oai.chat.completions.create(model="x", messages=HELLO).model == "fake-mini"
    assert _event().policy == "group:alias"


def test_another_organizations_policies_never_apply(gw, oai, models, live_server):
    """The outsider has a department team_engineering too; the policy naming it is Acme's."""
    configure(
        gw,
        routing_policies=[
            policy(departments=["team_engineering"], aliases={"drafting": "fake-mini"})
        ],
    )
    outsider = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=OUTSIDER_KEY, max_retries=0, timeout=20
    )

    with pytest.raises(openai.BadRequestError) as exc:
        outsider.chat.completions.create(model="drafting", messages=HELLO)

    assert exc.value.body["code"] == "model_not_found"
    outsider.chat.completions.create(model="outsider-only", messages=HELLO)
    assert UsageEvent.objects.get(organization=gw.outsider_org).policy == ""
