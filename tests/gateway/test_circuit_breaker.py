"""The circuit breaker per target (Redis, shared by every process): failures open it, the target
is skipped while it is open, a probe after the cool-down closes it or opens it again, and
without its store every target is tried (as the rate limits fail open)."""

import time

import openai
import pytest

from gateway import breaker, ratelimit
from gateway.models import UsageEvent
from tests.ports import free_port
from wallets.models import Hold

from .conftest import OUTSIDER_KEY, live_db
from .routing_setup import BREAKER, FALLBACK, HELLO, charged_once, configure, fail, two_targets

pytestmark = live_db


@pytest.fixture(autouse=True)
def _fresh_store_health():
    ratelimit.ratelimit_store_reset()
    breaker.breakers_reset()
    yield
    ratelimit.ratelimit_store_reset()


@pytest.fixture
def pair(gw, fake_pair):
    two_targets(gw, fake_pair)
    configure(gw, fallback=FALLBACK, circuit_breaker=BREAKER)
    return fake_pair


def _reasons() -> list[list[str]]:
    return [
        [f"{a['target']}:{a['reason']}" for a in e.attempts]
        for e in UsageEvent.objects.order_by("id")
    ]


def _open_primary(gw, oai, pair):
    fail(gw, "primary", "500")
    for _ in range(BREAKER["failure_threshold"]):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)
    assert pair.primary.posts == BREAKER["failure_threshold"]


def test_failures_open_a_targets_circuit_and_it_is_skipped(gw, oai, pair):
    _open_primary(gw, oai, pair)

    for _ in range(3):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert pair.primary.posts == 2  # not called again while open
    assert _reasons() == [["primary:http_500"]] * 2 + [["primary:circuit_open"]] * 3
    assert {e.target_id for e in UsageEvent.objects.all()} == {"backup"}
    charged_once(gw.wallet, "10.00")


def test_after_the_cool_down_a_probe_that_succeeds_closes_the_circuit(gw, oai, pair):
    configure(gw, circuit_breaker={**BREAKER, "cooldown_seconds": 0.5})
    _open_primary(gw, oai, pair)
    fail(gw, "primary", None)  # healed
    time.sleep(0.6)

    for _ in range(3):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert pair.primary.posts == 2 + 3  # the probe, then closed: the first choice again
    assert _reasons()[2:] == [[], [], []]


def test_a_probe_that_fails_opens_the_circuit_again(gw, oai, pair):
    configure(gw, circuit_breaker={**BREAKER, "cooldown_seconds": 0.5})
    _open_primary(gw, oai, pair)
    time.sleep(0.6)

    oai.chat.completions.create(model="fake-chat", messages=HELLO)  # the probe: fails over
    oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert pair.primary.posts == 3
    assert _reasons()[2:] == [["primary:http_500"], ["primary:circuit_open"]]


def test_with_every_circuit_open_a_request_is_refused_before_any_hold(gw, oai, pair):
    configure(gw, fallback={}, circuit_breaker=BREAKER)  # the breaker alone, one target
    fail(gw, "backup", "500")  # the first target by id: routing's choice
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            oai.chat.completions.create(model="fake-chat", messages=HELLO)
    holds = Hold.objects.count()

    with pytest.raises(openai.InternalServerError) as exc:
        oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert exc.value.status_code == 503
    assert exc.value.body["code"] == "circuit_open"
    assert 1 <= int(exc.value.response.headers["retry-after"]) <= 31
    assert pair.backup.posts == 2
    assert UsageEvent.objects.count() == 2
    assert Hold.objects.count() == holds
    charged_once(gw.wallet, "10.00")


def test_without_its_store_every_target_is_tried(gw, oai, pair, settings):
    _open_primary(gw, oai, pair)
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }

    oai.chat.completions.create(model="fake-chat", messages=HELLO)

    assert pair.primary.posts == 3  # tried although its circuit is open in the store
    assert _reasons()[-1] == ["primary:http_500"]
    assert ratelimit.outage_counts()[breaker.UNCHECKED] >= 1


def test_another_organizations_circuits_are_its_own(gw, oai, pair, live_server):
    _open_primary(gw, oai, pair)
    outsider = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=OUTSIDER_KEY, max_retries=0, timeout=20
    )

    outsider.chat.completions.create(model="outsider-only", messages=HELLO)

    theirs = UsageEvent.objects.get(organization=gw.outsider_org)
    assert (theirs.status, theirs.attempts) == ("ok", [])
