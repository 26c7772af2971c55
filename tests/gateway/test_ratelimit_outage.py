"""Rate limits without their store: the gateway's cache (Redis) refuses connections, stops
answering, or goes away in the middle of a request. A rate-limited group's request is served
(organization fails open) or refused with 503 (fails closed), never a 500, and what is served is
charged exactly once. Before this, every such request was a 500, and the token count after the
capture raised: charged replies ended as 500s and cut streams (docs/reliability.md section 5)."""

import os
import signal
import threading
import time
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from django.db.models import Sum

from chargeback.services import organization_rate_limits_unavailable_set
from gateway import ratelimit
from gateway.models import UsageEvent
from tests.ports import free_port
from tests.private_redis import PrivateRedis
from wallets.models import Hold, LedgerEntry

from .conftest import OUTSIDER_KEY, live_db

pytestmark = live_db

HELLO = [{"role": "user", "content": "Tell me about rate limits"}]


@pytest.fixture(autouse=True)
def _store_health_reset():
    ratelimit.ratelimit_store_reset()
    yield
    ratelimit.ratelimit_store_reset()


def _cache_at(settings, url: str) -> None:
    """Point the gateway's cache at `url`, with the configured socket timeouts."""
    assert settings.REDIS_URL, "these tests need REDIS_URL (the cache is then Redis)"
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url}}


@pytest.fixture
def store_refused(settings):
    """Nothing listens where the cache points."""
    _cache_at(settings, f"redis://127.0.0.1:{free_port()}/0")


@pytest.fixture
def private_store(settings, tmp_path):
    server = PrivateRedis(tmp_path / "redis").start()
    _cache_at(settings, server.url())
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)  # in case a test left it stopped
    server.stop()


def _limit(group, *, rpm=1, tpm=5):
    group.rpm_limit, group.tpm_limit = rpm, tpm
    group.save()


def _fail_closed(organization):
    organization_rate_limits_unavailable_set(
        organization=organization, value="closed", actor="test", via="api"
    )


def _each_call_charged_once(wallet, *, calls: int, funded: str):
    """`calls` answered calls, each captured once; the ledger sums to the balance; no hold left."""
    events = list(UsageEvent.objects.filter(wallet=wallet))
    assert len(events) == calls
    assert all(e.status == "ok" and e.http_status == 200 and e.cost > 0 for e in events)
    captures = LedgerEntry.objects.filter(wallet=wallet, kind="capture")
    assert sorted(c.reference for c in captures) == sorted(e.request_id for e in events)
    assert -sum(c.amount for c in captures) == sum(e.cost for e in events)
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(funded) - sum(e.cost for e in events)
    assert (
        wallet.balance == LedgerEntry.objects.filter(wallet=wallet).aggregate(s=Sum("amount"))["s"]
    )
    assert wallet.held == 0
    assert not Hold.objects.filter(wallet=wallet, status="pending").exists()


def test_without_its_store_a_group_that_fails_open_is_served_and_charged_once(
    gw, oai, claude, store_refused, caplog
):
    _limit(gw.group)  # 1 request and 5 tokens a minute: a working store would refuse most
    reply = oai.chat.completions.create(model="fake-chat", messages=HELLO)
    assert reply.choices[0].message.content
    chunks = list(oai.chat.completions.create(model="fake-chat", messages=HELLO, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    message = claude.messages.create(model="fake-chat", max_tokens=20, messages=HELLO)
    assert message.content[0].text

    _each_call_charged_once(gw.wallet, calls=3, funded="10.00")
    counts = ratelimit.outage_counts()
    assert counts[ratelimit.SERVED] == 3
    assert counts[ratelimit.TOKENS_LOST] == 3
    assert "rate-limit store unavailable (ConnectionError" in caplog.text


def test_an_organization_that_fails_closed_gets_503_with_retry_after_and_pays_nothing(
    gw, oai, claude, live_server, store_refused
):
    _limit(gw.group)
    _fail_closed(gw.org)
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as exc:
            oai.chat.completions.create(model="fake-chat", messages=HELLO, stream=stream)
        assert exc.value.status_code == 503
        assert exc.value.response.headers["retry-after"] == "2"
        assert exc.value.body["code"] == "rate_limit_unavailable"
        assert exc.value.body["type"] == "server_error"
    with pytest.raises(anthropic.InternalServerError) as exc:
        claude.messages.create(model="fake-chat", max_tokens=20, messages=HELLO)
    assert exc.value.status_code == 503
    assert exc.value.body["error"]["type"] == "overloaded_error"

    assert not UsageEvent.objects.filter(organization=gw.org).exists()
    assert not Hold.objects.filter(wallet=gw.wallet).exists()
    assert gw.refresh().balance == Decimal("10.00")
    assert ratelimit.outage_counts()[ratelimit.REFUSED] == 3

    # The choice is the organization's: the other tenant (open, the default) is served.
    outsider_group = gw.outsider_org.consumer_groups.get()
    _limit(outsider_group)
    outsider = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=OUTSIDER_KEY, max_retries=0, timeout=20
    )
    outsider.chat.completions.create(model="outsider-only", messages=HELLO)
    _each_call_charged_once(gw.outsider_wallet, calls=1, funded="5.00")


@pytest.mark.parametrize("fails", ["open", "closed"])
def test_a_store_that_stops_answering_costs_a_request_at_most_its_timeout(
    gw, oai, settings, private_store, fails
):
    _limit(gw.group, rpm=1000, tpm=1_000_000)
    if fails == "closed":
        _fail_closed(gw.org)
    oai.chat.completions.create(model="fake-chat", messages=HELLO)  # connected, counted
    timeout = settings.CACHES["default"]["OPTIONS"]["socket_timeout"]
    os.kill(private_store.process.pid, signal.SIGSTOP)  # accepts, never answers
    try:
        for _ in range(3):
            started = time.monotonic()
            if fails == "open":
                oai.chat.completions.create(model="fake-chat", messages=HELLO)
            else:
                with pytest.raises(openai.InternalServerError) as exc:
                    oai.chat.completions.create(model="fake-chat", messages=HELLO)
                assert exc.value.status_code == 503
            # One store call times out; then the process leaves the store alone for a while.
            assert time.monotonic() - started < timeout + 0.5
    finally:
        os.kill(private_store.process.pid, signal.SIGCONT)
    _each_call_charged_once(gw.wallet, calls=4 if fails == "open" else 1, funded="10.00")


def test_the_limits_hold_again_once_the_store_is_back(gw, oai, settings, private_store, caplog):
    settings.KT_RATELIMIT_STORE_RETRY_SECONDS = 0.2
    _limit(gw.group, rpm=2, tpm=1_000_000)
    for _ in range(2):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)

    private_store.stop()
    oai.chat.completions.create(model="fake-chat", messages=HELLO)  # open: served
    private_store.start()  # empty: a new window
    time.sleep(0.2)  # the retry interval set above
    for _ in range(2):
        oai.chat.completions.create(model="fake-chat", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as exc:
        oai.chat.completions.create(model="fake-chat", messages=HELLO)
    assert exc.value.body["code"] == "rate_limit_exceeded"
    assert "rate-limit store available again" in caplog.text
    _each_call_charged_once(gw.wallet, calls=5, funded="10.00")


@pytest.mark.parametrize("stream", [False, True])
def test_a_store_lost_between_the_hold_and_the_capture_never_costs_the_reply(
    gw, oai, private_store, stream
):
    """The token count runs after the capture: the reply is whole and charged once."""
    _limit(gw.group, rpm=1000, tpm=1_000_000)
    outcome = {}

    def call():
        try:
            reply = oai.chat.completions.create(
                model="fake-chat",
                messages=HELLO,
                stream=stream,
                extra_headers={"x-fake-latency": "1500"},
            )
            outcome["chunks"] = list(reply) if stream else [reply]
        except (openai.APIError, httpx.HTTPError) as exc:  # a 500 or a cut stream
            outcome["error"] = exc

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 10
    while not Hold.objects.filter(wallet=gw.wallet, status="pending").exists():
        assert time.monotonic() < deadline, "the request never placed its hold"
        time.sleep(0.02)
    private_store.stop()  # admitted and held; the provider has not answered yet
    thread.join(20)

    assert "error" not in outcome, outcome.get("error")
    last = outcome["chunks"][-1]
    assert last.choices[0].finish_reason == "stop"
    _each_call_charged_once(gw.wallet, calls=1, funded="10.00")
    assert ratelimit.outage_counts()[ratelimit.TOKENS_LOST] == 1
