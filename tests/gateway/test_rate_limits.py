"""Rate limits as OpenAI sends them: per consumer group and per end user, requests and tokens
per minute, tokens per day, requests in flight, the organization's defaults; token buckets in
Redis (a limit of N a minute never lets 2N through around a minute's boundary); the
`x-ratelimit-*` headers on every response and a 429 in OpenAI's shape with `retry-after`."""

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import openai
import pytest
import time_machine

from chargeback.keys import hash_key
from chargeback.models import ConsumerGroup, Department, Organization
from gateway import ratelimit
from gateway.auth import _load
from gateway.cache import clear_all
from gateway.errors import GatewayError
from gateway.models import UsageEvent
from gateway.ratelimit_buckets import LocalBuckets, duration
from wallets import services
from wallets.models import Hold

from .conftest import KEY, OUTSIDER_KEY, live_db

HELLO = [{"role": "user", "content": "Tell me about token buckets"}]


@pytest.fixture(autouse=True)
def _fresh_store_health():
    ratelimit.ratelimit_store_reset()
    yield
    ratelimit.ratelimit_store_reset()


def _limit(gw, **fields):
    ConsumerGroup.objects.filter(pk=gw.group.pk).update(**fields)
    clear_all()


def _defaults(gw, value: dict):
    Organization.objects.filter(pk=gw.org.pk).update(rate_limit_defaults=value)
    clear_all()


def _call(oai, **kwargs):
    return oai.chat.completions.with_raw_response.create(
        model="fake-chat", messages=HELLO, **kwargs
    )


@live_db
def test_requests_per_minute_count_down_in_the_headers_then_429_in_openais_shape(gw, oai):
    _limit(gw, rpm_limit=3)

    remaining = [_call(oai).headers["x-ratelimit-remaining-requests"] for _ in range(3)]
    with pytest.raises(openai.RateLimitError) as exc:
        _call(oai)

    assert remaining == ["2", "1", "0"]
    refused = exc.value.response
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    # A bucket of 3 refills one request every 20 s.
    assert 15 <= int(refused.headers["retry-after"]) <= 20
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    error = exc.value.body
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert error["message"].startswith(
        "Rate limit reached for consumer group engineering: 3 requests per minute."
    )
    assert UsageEvent.objects.count() == 3


@live_db
def test_tokens_per_day_refuse_once_spent_and_the_headers_say_so(gw, oai):
    _limit(gw, tpd_limit=30)

    first = _call(oai)
    assert first.headers["x-ratelimit-limit-tokens"] == "30"
    with pytest.raises(openai.RateLimitError) as exc:
        _call(oai)

    assert exc.value.body["type"] == "tokens"
    assert "30 tokens per day" in exc.value.body["message"]
    assert exc.value.response.headers["x-ratelimit-remaining-tokens"] == "0"
    # What is left of a day's bucket after the first call's tokens: hours, not seconds.
    assert "h" in exc.value.response.headers["x-ratelimit-reset-tokens"]


@live_db
def test_each_end_user_has_their_own_limit_within_the_groups(gw, oai):
    _limit(gw, user_rate_limits={"rpm": 1})

    _call(oai, user="alice")
    with pytest.raises(openai.RateLimitError) as exc:
        _call(oai, user="alice")
    _call(oai, user="bob")
    _call(oai)  # no end user: only the group's limits, and it has none
    _call(oai)

    assert "end user alice: 1 requests per minute" in exc.value.body["message"]
    assert UsageEvent.objects.count() == 4


@live_db
def test_the_organizations_defaults_apply_where_a_group_sets_no_limit(gw, oai):
    _defaults(gw, {"rpm": 1, "per_user": {"tpm": 100_000}})

    first = _call(oai, user="alice")
    with pytest.raises(openai.RateLimitError):
        _call(oai)
    _limit(gw, rpm_limit=5)  # its own limit wins over the default
    _call(oai)

    assert first.headers["x-ratelimit-limit-requests"] == "1"
    assert first.headers["x-ratelimit-limit-tokens"] == "100000"


@live_db
def test_max_parallel_requests_refuses_what_would_exceed_it_and_frees_the_slot_after(gw, oai):
    _limit(gw, parallel_limit=1)
    outcome = {}

    def slow():
        outcome["reply"] = oai.chat.completions.create(
            model="fake-chat", messages=HELLO, extra_headers={"x-fake-latency": "1500"}
        )

    caller = threading.Thread(target=slow)
    caller.start()
    deadline = time.monotonic() + 10
    while not Hold.objects.filter(status="pending").exists():  # admitted, held, in flight
        assert time.monotonic() < deadline, "the slow request never started"
        time.sleep(0.02)
    with pytest.raises(openai.RateLimitError) as refused:
        _call(oai)
    outcome["refused"] = refused.value
    caller.join(20)
    _call(oai)  # the slot was freed

    assert "1 requests in flight" in outcome["refused"].body["message"]
    assert outcome["reply"].choices[0].message.content
    assert UsageEvent.objects.count() == 2


@live_db
def test_a_failed_or_refused_request_frees_its_slot_too(gw, oai):
    _limit(gw, parallel_limit=1)

    # A strict team with room for one ordinary request's worst case (0.01009) at a time, not
    # for two choices' (the cascade would otherwise fall through to the organization).
    services.wallet_reclaim(department=gw.department, amount=Decimal("9.985"))
    Department.objects.filter(pk=gw.department.pk).update(fall_through=False)

    with pytest.raises(openai.InternalServerError):
        _call(oai, extra_headers={"x-fake-fault": "500"})
    with pytest.raises(openai.APIStatusError) as refused:
        _call(oai, n=2)  # admitted, then its hold refused
    _call(oai)
    _call(oai)

    assert refused.value.status_code == 402


@live_db
def test_a_stream_carries_the_headers(gw, gateway_url):
    _limit(gw, rpm_limit=10, tpm_limit=100_000)
    body = {"model": "fake-chat", "messages": HELLO, "stream": True}

    with httpx.stream(
        "POST",
        f"{gateway_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
    ) as response:
        response.read()

    assert response.headers["x-ratelimit-remaining-requests"] == "9"
    assert response.headers["x-ratelimit-limit-tokens"] == "100000"


@live_db
def test_another_organizations_limits_are_its_own(gw, oai, live_server):
    _limit(gw, rpm_limit=1)
    _call(oai)
    outsider = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=OUTSIDER_KEY, max_retries=0, timeout=20
    )

    for _ in range(3):
        outsider.chat.completions.create(model="outsider-only", messages=HELLO)

    assert UsageEvent.objects.filter(organization=gw.outsider_org).count() == 3


@live_db
def test_without_redis_the_limits_hold_in_the_process(gw, oai, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    _limit(gw, rpm_limit=2)

    _call(oai)
    _call(oai)
    with pytest.raises(openai.RateLimitError):
        _call(oai)


@pytest.mark.django_db
def test_the_bucket_refills_continuously_in_redis(gw_local):
    """60 a minute: 60 at once, then one a second, never a new window of 60."""
    gw_local.group.rpm_limit = 60
    gw_local.group.save()
    ctx = _load(hash_key(KEY))
    for n in range(60):
        ratelimit.ratelimit_admit(ctx, user="", request_id=f"req_{n}")
    with pytest.raises(GatewayError) as refused:
        ratelimit.ratelimit_admit(ctx, user="", request_id="req_60")
    wait = int(refused.value.headers["retry-after-ms"]) / 1000
    assert 0 < wait <= 1

    time.sleep(wait + 0.05)
    ratelimit.ratelimit_admit(ctx, user="", request_id="req_61")
    with pytest.raises(GatewayError) as again:
        ratelimit.ratelimit_admit(ctx, user="", request_id="req_62")
    assert again.value.status == 429


def test_a_minutes_boundary_does_not_let_twice_the_limit_through():
    """A fixed window would allow 10 at 12:00:59 and 10 more at 12:01:00."""
    buckets = LocalBuckets()
    args = ["req", 900, "r", 10, 60]
    with time_machine.travel(datetime(2026, 5, 1, 12, 0, 59, tzinfo=UTC), tick=False) as clock:
        admitted = sum(buckets.admit(["k"], args)[0] == 0 for _ in range(15))
        clock.move_to(datetime(2026, 5, 1, 12, 1, 1, tzinfo=UTC))
        admitted_after = sum(buckets.admit(["k"], args)[0] == 0 for _ in range(15))

    assert (admitted, admitted_after) == (10, 0)  # 2 s refill 10/60 a second: not one whole


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.02, "20ms"), (0, "0ms"), (1.5, "1.5s"), (59.96, "60s"), (360, "6m0s"), (3723, "1h2m3s")],
)
def test_reset_times_are_written_as_openai_writes_them(seconds, text):
    assert duration(seconds) == text
