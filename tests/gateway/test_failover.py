"""Failover: two fake providers on loopback, the first made to fail on cue. A connect error, a
429, a 5xx or a timeout before the first byte moves the request to the next target; once bytes
reached the client, nothing is retried. One hold per request (raised when the fallback model is
dearer), one capture at the served target's price, and the event says who served and why the
others failed."""

from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from chargeback.models import ProviderTarget
from gateway.cache import clear_all
from gateway.models import UsageEvent
from gateway.pricing import Usage, cost_of
from tests.factories import PriceFactory, ProviderTargetFactory
from tests.ports import free_port
from wallets import services
from wallets.models import Hold

from .conftest import OUTSIDER_KEY, live_db
from .routing_setup import FALLBACK, HELLO, charged_once, configure, dearer_price, fail, two_targets

pytestmark = live_db


@pytest.fixture
def pair(gw, fake_pair):
    two_targets(gw, fake_pair)
    configure(gw, fallback=FALLBACK)
    return fake_pair


def _event() -> UsageEvent:
    (event,) = UsageEvent.objects.all()
    return event


@pytest.mark.parametrize(
    ("fault", "reason"), [("500", "http_500"), ("429", "http_429")], ids=["5xx", "429"]
)
def test_an_error_status_moves_the_request_to_the_next_target(gw, oai, pair, fault, reason):
    fail(gw, "primary", fault)

    reply = oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert reply.choices[0].message.content
    assert (pair.primary.posts, pair.backup.posts) == (1, 1)
    event = _event()
    assert (event.status, event.target_id, event.model_served) == ("ok", "backup", "fake-chat")
    assert event.attempts == [{"target": "primary", "model": "fake-chat", "reason": reason}]
    assert event.cost == cost_of(
        gw.chat, Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens)
    )
    charged_once(gw.wallet, "10.00")


def test_a_stream_and_a_message_fail_over_too(gw, oai, claude, pair):
    fail(gw, "primary", "500")

    chunks = list(oai.chat.completions.create(model="fake-chat", messages=HELLO, stream=True))
    message = claude.messages.create(model="fake-chat", max_tokens=20, messages=HELLO)

    assert chunks[-1].choices[0].finish_reason == "stop"
    assert message.content[0].text
    events = charged_once(gw.wallet, "10.00")
    assert [(e.target_id, e.stream, e.status) for e in events] == [
        ("backup", True, "ok"),
        ("backup", False, "ok"),
    ]
    assert all(e.attempts[0]["reason"] == "http_500" for e in events)


def test_a_timeout_before_the_first_byte_moves_on(gw, oai, pair):
    ProviderTarget.objects.filter(target_id="primary").update(
        options={
            "headers": {"x-fake-fault": "timeout", "x-fake-hang": "3000"},
            "timeouts": {"read": 0.3},
        }
    )
    clear_all()

    reply = oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert reply.choices[0].message.content
    event = _event()
    assert event.target_id == "backup"
    assert event.attempts == [{"target": "primary", "model": "fake-chat", "reason": "timeout"}]


def test_a_stream_whose_first_event_never_comes_moves_on_before_the_client_sees_a_byte(
    gw, oai, pair
):
    """The head of the stream arrived (200), its first event did not: still nothing relayed."""
    ProviderTarget.objects.filter(target_id="primary").update(
        options={
            "headers": {"x-fake-fault": "stall", "x-fake-hang": "3000"},
            "timeouts": {"read": 0.3},
        }
    )
    clear_all()

    chunks = list(oai.chat.completions.create(model="fake-chat", messages=HELLO, stream=True))

    assert chunks[-1].choices[0].finish_reason == "stop"
    event = _event()
    assert (event.target_id, event.status) == ("backup", "ok")
    assert event.attempts[0]["reason"] == "timeout"


def test_a_connect_error_moves_on(gw, oai, pair, settings):
    dead = f"127.0.0.1:{free_port()}"
    settings.KT_UPSTREAM_ALLOW_HOSTS = [*settings.KT_UPSTREAM_ALLOW_HOSTS, dead]
    ProviderTarget.objects.filter(target_id="primary").update(base_url=f"http://{dead}")
    clear_all()

    oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert _event().attempts == [
        {"target": "primary", "model": "fake-chat", "reason": "connect_error"}
    ]


def test_a_failure_retry_on_leaves_out_ends_the_request(gw, oai, pair):
    configure(gw, fallback={**FALLBACK, "retry_on": ["5xx"]})
    fail(gw, "primary", "429")

    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert (pair.primary.posts, pair.backup.posts) == (1, 0)
    event = _event()
    assert (event.status, event.http_status, event.target_id) == ("provider_error", 429, "primary")
    assert event.attempts == [{"target": "primary", "model": "fake-chat", "reason": "http_429"}]
    charged_once(gw.wallet, "10.00")


def test_when_every_target_fails_the_last_error_is_the_answer_and_nothing_is_charged(gw, oai, pair):
    fail(gw, "primary", "500")
    fail(gw, "backup", "500")

    with pytest.raises(openai.InternalServerError) as exc:
        oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert exc.value.status_code == 500
    event = _event()
    assert (event.status, event.target_id, event.cost) == ("provider_error", "backup", 0)
    assert [a["target"] for a in event.attempts] == ["primary", "backup"]
    charged_once(gw.wallet, "10.00")


def test_max_retries_bounds_the_targets_tried(gw, oai, pair):
    configure(gw, fallback={**FALLBACK, "max_retries": 0})
    fail(gw, "primary", "500")

    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert (pair.primary.posts, pair.backup.posts) == (1, 0)


def test_without_fallback_configured_a_failing_target_is_the_answer(gw, oai, pair):
    configure(gw, fallback={})
    fail(gw, "backup", "500")  # routing's own choice: the first target by id

    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert (pair.primary.posts, pair.backup.posts) == (0, 1)
    assert _event().attempts == []


def test_once_bytes_reached_the_client_nothing_is_retried(gw, oai, pair):
    fail(gw, "primary", "reset", **{"x-fake-chunks": "8"})
    received = []

    def read_stream():
        for chunk in oai.chat.completions.create(model="fake-chat", messages=HELLO, stream=True):
            received.append(chunk)

    with pytest.raises((openai.APIError, httpx.HTTPError)):
        read_stream()

    assert received  # the client had part of the reply
    assert (pair.primary.posts, pair.backup.posts) == (1, 0)
    event = _event()
    assert (event.status, event.error_code, event.target_id) == (
        "provider_error",
        "upstream_reset",
        "primary",
    )
    assert event.attempts == []
    assert event.usage_source == "estimated"
    charged_once(gw.wallet, "10.00")


def test_a_dearer_fallback_model_raises_the_one_hold_and_is_charged_at_its_price(gw, oai, pair):
    premium = dearer_price()
    two_targets(gw, pair, backup_models=("fake-premium",))
    configure(gw, fallback=FALLBACK, model_mapping={"fake-chat": ["fake-premium"]})
    fail(gw, "primary", "500")

    reply = oai.chat.completions.create(model="fake-chat", messages=HELLO, max_tokens=50)

    assert reply.model == "fake-premium"
    event = _event()
    assert (event.model_requested, event.model_served) == ("fake-chat", "fake-premium")
    assert (event.target_id, event.price_id) == ("backup", premium.pk)
    assert event.cost == cost_of(
        premium, Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens)
    )
    (hold,) = Hold.objects.filter(request_id=event.request_id)
    assert hold.status == "captured"
    assert hold.captured_amount == event.cost
    # Raised to the dearer model's worst case: 50 output tokens alone at its price.
    assert hold.amount >= Decimal(50) * premium.output_per_mtok / 1_000_000
    assert not event.above_hold
    charged_once(gw.wallet, "10.00")


def test_a_dearer_fallback_the_wallet_cannot_cover_is_a_402_and_costs_nothing(gw, oai, pair):
    dearer_price()
    two_targets(gw, pair, backup_models=("fake-premium",))
    configure(gw, fallback=FALLBACK, model_mapping={"fake-chat": ["fake-premium"]})
    fail(gw, "primary", "500")
    services.wallet_allocate(
        department=gw.department, amount=Decimal("0.01"), currency="USD", user_ref="frugal"
    )
    wallet = services.wallet_for_user(organization=gw.org, user_ref="frugal")

    with pytest.raises(openai.APIStatusError) as exc:
        oai.chat.completions.create(model="fake-chat", messages=HELLO, max_tokens=50, user="frugal")

    assert exc.value.status_code == 402
    assert exc.value.body["code"] == "insufficient_quota"
    assert "fake-premium" in exc.value.body["message"]
    assert (pair.primary.posts, pair.backup.posts) == (1, 0)
    event = _event()
    assert (event.status, event.http_status, event.cost) == ("rejected", 402, 0)
    assert event.attempts == [{"target": "primary", "model": "fake-chat", "reason": "http_500"}]
    charged_once(wallet, "0.01")


@pytest.mark.parametrize(
    ("strategy", "served"),
    [
        ("ordered", ["primary"] * 4),
        ("cost", ["backup"] * 4),  # its price of fake-chat is the lower one
        ("round-robin", ["backup", "backup", "primary", "primary"]),
    ],
)
def test_the_strategy_orders_the_targets(gw, oai, fake_pair, strategy, served):
    two_targets(gw, fake_pair, backup="openai")
    PriceFactory(
        provider="openai",
        model="fake-chat",
        input_per_mtok=Decimal("0.100000"),
        output_per_mtok=Decimal("0.400000"),
    )
    configure(gw, fallback={**FALLBACK, "strategy": strategy})

    for _ in range(4):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)

    targets = [e.target_id for e in UsageEvent.objects.order_by("id")]
    assert (sorted(targets) if strategy == "round-robin" else targets) == served
    assert (fake_pair.primary.posts, fake_pair.backup.posts) == (
        served.count("primary"),
        served.count("backup"),
    )


def test_another_organizations_targets_are_never_a_fallback(gw, oai, pair, live_server):
    """The outsider's target serves the same model and works: it is not a candidate."""
    ProviderTargetFactory(
        organization=gw.outsider_org,
        target_id="their-backup",
        provider="fake",
        base_url=pair.backup_url,
        served_models=["fake-chat"],
    )
    ProviderTarget.objects.filter(organization=gw.org, target_id="backup").delete()
    clear_all()
    fail(gw, "primary", "500")

    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert pair.backup.posts == 0
    assert _event().target_id == "primary"
    outsider = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=OUTSIDER_KEY, max_retries=0, timeout=20
    )
    outsider.chat.completions.create(model="outsider-only", messages=HELLO)
    assert not UsageEvent.objects.filter(organization=gw.outsider_org).exclude(attempts=[]).exists()


def test_an_anthropic_client_gets_its_error_shape_when_every_target_fails(gw, claude, pair):
    fail(gw, "primary", "500")
    fail(gw, "backup", "429")

    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="fake-chat", max_tokens=20, messages=HELLO)

    assert [a["reason"] for a in _event().attempts] == ["http_500", "http_429"]
