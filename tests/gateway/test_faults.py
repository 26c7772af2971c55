"""When things break: every hold is resolved once, nothing is charged twice, the event says
what happened."""

import socket
import subprocess
import threading
import time
from datetime import timedelta
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from django.utils import timezone

from chargeback.models import ConsumerGroup, ProviderTarget
from gateway.models import UsageEvent
from gateway.sweep import holds_sweep
from gateway.tasks import sweep_expired_holds
from tests.ports import free_port
from wallets import services
from wallets.models import Hold

from .conftest import KEY, OUTSIDER_KEY, live_db

pytestmark = live_db

HELLO = [{"role": "user", "content": "Tell me about wallets"}]


def _resolved_event():
    """The one event; its hold resolved; the wallet charged exactly the event's cost."""
    event = UsageEvent.objects.get()
    hold = Hold.objects.get(request_id=event.request_id)
    assert hold.status in ("captured", "released")
    assert (hold.captured_amount or Decimal(0)) == event.cost
    return event


@pytest.mark.parametrize("stream", [False, True])
def test_a_provider_500_is_passed_through_released_and_recorded(gw, oai, stream):
    with pytest.raises(openai.InternalServerError) as exc:
        oai.chat.completions.create(
            model="fake-chat", messages=HELLO, stream=stream, extra_headers={"x-fake-fault": "500"}
        )
    assert exc.value.status_code == 500
    assert exc.value.body["message"] == "fake 500"
    event = _resolved_event()
    assert (event.status, event.http_status, event.cost) == ("provider_error", 500, 0)
    assert event.error_code == "server_error"
    assert gw.refresh().balance == Decimal("10.00")
    assert gw.wallet.held == 0


def test_a_provider_429_is_passed_through(gw, oai, claude):
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(
            model="fake-chat", messages=HELLO, extra_headers={"x-fake-fault": "429"}
        )
    with pytest.raises(anthropic.RateLimitError) as exc:
        claude.messages.create(
            model="fake-chat", max_tokens=5, messages=HELLO, extra_headers={"x-fake-fault": "429"}
        )
    assert exc.value.body["error"]["type"] == "rate_limit_error"
    assert set(UsageEvent.objects.values_list("status", "http_status")) == {("provider_error", 429)}
    assert gw.refresh().held == 0
    assert gw.wallet.balance == Decimal("10.00")


@pytest.mark.parametrize("stream", [False, True])
def test_a_provider_that_sends_nothing_in_time_is_a_504(gw, oai, settings, stream, caplog):
    settings.KT_UPSTREAM_READ_TIMEOUT = 0.3
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as exc:
        oai.chat.completions.create(
            model="fake-chat",
            messages=HELLO,
            stream=stream,
            extra_headers={"x-fake-fault": "timeout", "x-fake-hang": "4000"},
        )
    assert time.monotonic() - started < 3.5  # the provider would have answered at 4 s
    assert exc.value.status_code == 504
    assert exc.value.body["code"] == "upstream_timeout"
    event = _resolved_event()
    assert (event.status, event.http_status, event.cost) == ("timeout", 504, 0)
    assert gw.refresh().held == 0
    assert f"request {event.request_id}: target fake: before the reply: ReadTimeout" in caplog.text


def test_a_stream_that_times_out_midway_charges_an_estimate(gw, gateway_url, settings):
    settings.KT_UPSTREAM_READ_TIMEOUT = 0.3
    body = {"model": "fake-chat", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}", "x-fake-chunk-delay": "600"}
    with httpx.stream(
        "POST", f"{gateway_url}/chat/completions", json=body, headers=headers, timeout=10
    ) as r:
        lines = list(r.iter_lines())
    assert any('"upstream_timeout"' in line for line in lines)
    event = _resolved_event()
    assert (event.status, event.usage_source) == ("timeout", "estimated")
    assert event.cost > 0


def test_a_provider_reset_mid_stream_charges_an_estimate_of_what_was_relayed(gw, oai, caplog):
    stream = oai.chat.completions.create(
        model="fake-chat",
        messages=HELLO,
        stream=True,
        max_tokens=40,
        extra_headers={"x-fake-fault": "reset", "x-fake-chunks": "8"},
    )
    received = []

    def consume():
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError):
        consume()
    received = "".join(received)
    assert received
    event = _resolved_event()
    assert (event.status, event.error_code, event.usage_source) == (
        "provider_error",
        "upstream_reset",
        "estimated",
    )
    assert event.completion_tokens == -(-len(received.encode()) // 4)
    assert event.cost > 0
    assert gw.refresh().balance == Decimal("10.00") - event.cost
    assert f"request {event.request_id}: target fake: mid-stream: ReadError" in caplog.text


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_a_stream_without_a_usage_chunk_is_charged_an_estimate_never_zero(gw, oai, claude, api):
    headers = {"x-fake-fault": "no_usage"}
    if api == "openai":
        chunks = list(
            oai.chat.completions.create(
                model="fake-chat", messages=HELLO, stream=True, extra_headers=headers
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        with claude.messages.stream(
            model="fake-chat", max_tokens=16, messages=HELLO, extra_headers=headers
        ) as s:
            text = "".join(s.text_stream)
    event = _resolved_event()
    assert (event.status, event.usage_source) == ("ok", "estimated")
    # About 4 bytes per token, but never more than the request allowed (max_tokens=16 for the
    # Anthropic call: its 16 words are more than 16 tokens at 4 bytes each).
    cap = 16 if api == "anthropic" else gw.chat.max_output_tokens
    assert event.completion_tokens == min(-(-len(text.encode()) // 4), cap)
    assert event.prompt_tokens > 0
    assert event.cost > 0
    assert not event.above_hold


def test_a_client_that_disconnects_mid_stream_resolves_its_hold(gw, gateway_url):
    body = {"model": "fake-chat", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}", "x-fake-chunks": "10", "x-fake-chunk-delay": "150"}
    with httpx.stream(
        "POST", f"{gateway_url}/chat/completions", json=body, headers=headers, timeout=10
    ) as r:
        for line in r.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                break  # leave after the first words: the response is closed here
    deadline = time.monotonic() + 5
    while not UsageEvent.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    event = _resolved_event()
    assert (event.status, event.error_code, event.usage_source) == (
        "client_disconnect",
        "client_disconnect",
        "estimated",
    )
    assert event.cost > 0
    wallet = gw.refresh()
    assert wallet.held == 0
    assert wallet.balance == Decimal("10.00") - event.cost


@pytest.mark.django_db
def test_a_request_killed_between_hold_and_capture_is_swept_and_recorded_once(gw_local):
    gw = gw_local
    hold = services.hold_place(
        wallet=gw.wallet, amount=Decimal("2.00"), request_id="req_killed", ttl_seconds=60
    )
    Hold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert gw.refresh().held == Decimal("2.00")

    assert sweep_expired_holds.apply().get() == 1
    assert holds_sweep() == 0  # idempotent

    wallet = gw.refresh()
    assert (wallet.held, wallet.balance) == (0, Decimal("10.00"))
    event = UsageEvent.objects.get()
    assert (event.request_id, event.status, event.cost) == ("req_killed", "expired", 0)
    assert event.wallet == gw.wallet
    assert event.department == gw.department
    assert Hold.objects.get().status == "expired"


@pytest.mark.django_db
def test_the_sweep_writes_events_an_earlier_run_missed(gw_local):
    gw = gw_local
    hold = services.hold_place(
        wallet=gw.wallet, amount=Decimal("1.00"), request_id="req_orphan", ttl_seconds=-1
    )
    services.holds_expire()  # a sweep that died before writing its events
    assert holds_sweep() == 1
    assert UsageEvent.objects.get().request_id == hold.request_id


@pytest.mark.django_db
def test_the_beat_schedule_runs_the_sweep(settings):
    entries = [e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "gateway.tasks.sweep_expired_holds" in entries


def test_a_stream_that_outlives_its_hold_ttl_keeps_its_hold_and_is_charged(
    gw, gateway_url, settings
):
    settings.KT_HOLD_TTL_SECONDS = 2  # renewed every 0.67 s while events keep coming
    body = {"model": "fake-chat", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}", "x-fake-chunks": "8", "x-fake-chunk-delay": "400"}
    with httpx.stream(
        "POST", f"{gateway_url}/chat/completions", json=body, headers=headers, timeout=10
    ) as r:
        for n, _line in enumerate(r.iter_lines()):
            if n == 12:  # about 2.4 s in: past the first expiry
                assert holds_sweep() == 0
    event = _resolved_event()
    assert (event.status, event.usage_source) == ("ok", "provider")
    assert Hold.objects.get().status == "captured"
    assert gw.refresh().balance == Decimal("10.00") - event.cost


# --- per-target timeouts (providers.targets[].timeouts in the config file) -------------------


def _target_timeouts(gw, **timeouts):
    ProviderTarget.objects.filter(pk=gw.target.pk).update(options={"timeouts": timeouts})


def test_a_targets_read_timeout_applies_instead_of_the_setting(gw, oai, settings):
    settings.KT_UPSTREAM_READ_TIMEOUT = 30
    _target_timeouts(gw, read=0.4)
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as exc:
        oai.chat.completions.create(
            model="fake-chat",
            messages=HELLO,
            extra_headers={"x-fake-fault": "timeout", "x-fake-hang": "3000"},
        )
    assert time.monotonic() - started < 2.5  # the provider answers at 3 s, the setting at 30
    assert (exc.value.status_code, exc.value.body["code"]) == (504, "upstream_timeout")
    assert _resolved_event().status == "timeout"


def test_a_targets_read_timeout_also_bounds_the_wait_between_stream_events(
    gw, gateway_url, settings
):
    settings.KT_UPSTREAM_READ_TIMEOUT = 30
    _target_timeouts(gw, read=0.3)
    body = {"model": "fake-chat", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}", "x-fake-chunk-delay": "1500"}
    started = time.monotonic()
    with httpx.stream(
        "POST", f"{gateway_url}/chat/completions", json=body, headers=headers, timeout=10
    ) as r:
        lines = list(r.iter_lines())
    assert time.monotonic() - started < 1.4  # the first content event was due at 1.5 s
    assert any('"upstream_timeout"' in line for line in lines)
    assert _resolved_event().status == "timeout"


def test_a_targets_connect_timeout_applies_instead_of_the_setting(gw, oai, settings):
    settings.KT_UPSTREAM_CONNECT_TIMEOUT = 30
    # A listener whose accept queue is full: the next connection attempt gets no answer.
    with socket.socket() as listener, socket.socket() as queued:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        queued.connect(listener.getsockname())
        port = listener.getsockname()[1]
        # The operator's allow-list, where the gateway checks upstream addresses (a loopback
        # port is refused otherwise).
        settings.KT_UPSTREAM_ALLOW_HOSTS = [f"127.0.0.1:{port}"]
        ProviderTarget.objects.filter(pk=gw.target.pk).update(
            base_url=f"http://127.0.0.1:{port}", options={"timeouts": {"connect": 0.3}}
        )
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as exc:
            oai.chat.completions.create(model="fake-chat", messages=HELLO)
        assert time.monotonic() - started < 2.5
    assert (exc.value.status_code, exc.value.body["code"]) == (504, "upstream_timeout")
    assert _resolved_event().error_code == "upstream_timeout"


def test_another_organizations_target_keeps_the_settings_timeouts(gw, gateway_url, settings):
    settings.KT_UPSTREAM_READ_TIMEOUT = 5
    _target_timeouts(gw, read=0.2)  # ours, not theirs
    body = {"model": "outsider-only", "messages": HELLO}
    headers = {"Authorization": f"Bearer {OUTSIDER_KEY}", "x-fake-latency": "600"}
    r = httpx.post(f"{gateway_url}/chat/completions", json=body, headers=headers, timeout=10)
    assert r.status_code == 200
    assert UsageEvent.objects.get().organization == gw.outsider_org


# --- after the reply, the capture comes first ---------------------------------------------------


@pytest.fixture
def private_redis():
    """A Redis server of this test's own, to stop while a request is in flight."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
    yield port, proc
    proc.kill()
    proc.wait()


def test_a_rate_limit_store_lost_during_the_reply_does_not_fail_the_charged_call(
    gw, oai, settings, private_redis, caplog
):
    port, redis = private_redis
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }
    ConsumerGroup.objects.filter(pk=gw.group.pk).update(tpm_limit=1_000_000)
    outcome = {}

    def call():
        try:
            outcome["reply"] = oai.chat.completions.create(
                model="fake-chat", messages=HELLO, extra_headers={"x-fake-latency": "1500"}
            )
        except openai.APIError as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 10
    while not Hold.objects.exists():  # admitted (the store counted it) and held
        assert time.monotonic() < deadline
        time.sleep(0.02)
    redis.kill()
    redis.wait()
    caller.join(timeout=20)

    assert "error" not in outcome, outcome.get("error")
    assert outcome["reply"].choices[0].message.content
    event = _resolved_event()
    assert (event.status, event.usage_source) == ("ok", "provider")
    assert event.cost > 0
    assert gw.refresh().balance == Decimal("10.00") - event.cost
    assert "rate-limit store unavailable" in caplog.text  # logged, and nothing else happened
