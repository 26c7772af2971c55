"""Single flight: identical requests that miss together reach the provider once, within one
gateway process and across processes sharing Redis; a failed fill releases the waiters."""

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import openai
import pytest
from django.db import connection

from gateway.models import UsageEvent
from tests.faults.gateway_process import GatewayProcess
from wallets.models import Hold, LedgerEntry

from .conftest import KEY, cache_on, live_db

pytestmark = live_db

QUESTION = [{"role": "user", "content": "Which plan covers weekend support?"}]
SLOW = {"x-fake-latency": "400"}  # the first call is still running when the others arrive


def _burst(n: int, call):
    """Run `call()` n times at once (a barrier releases them together); the results in order."""
    barrier = threading.Barrier(n)

    def one(_):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def _assert_charged_once(gw, n: int):
    events = list(UsageEvent.objects.order_by("id"))
    assert len(events) == n
    paid = [e for e in events if e.status == "ok"]
    hits = [e for e in events if e.status == "cache_hit"]
    assert len(paid) == 1
    assert len(hits) == n - 1
    assert {e.cost for e in hits} == {Decimal(0)}
    assert {e.saved for e in hits} == {paid[0].cost}
    assert paid[0].cost > 0
    assert Hold.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="capture").count() == 1
    assert gw.refresh().balance == Decimal("10.00") - paid[0].cost


def test_fifty_identical_requests_reach_the_provider_once(
    gw, oai, cache_store, fake_provider_server
):
    cache_on(gw.org)
    before = fake_provider_server.calls.get("/v1/chat/completions", 0)
    replies = _burst(
        50,
        lambda: oai.chat.completions.with_raw_response.create(
            model="fake-chat", messages=QUESTION, extra_headers=SLOW
        ),
    )
    assert fake_provider_server.calls.get("/v1/chat/completions", 0) == before + 1
    texts = {r.parse().choices[0].message.content for r in replies}
    assert len(texts) == 1
    assert sorted(r.headers["x-kt-cache"] for r in replies) == ["hit"] * 49 + ["miss"]
    _assert_charged_once(gw, 50)


def test_identical_streams_reach_the_provider_once_and_each_gets_the_whole_stream(
    gw, oai, cache_store, fake_provider_server
):
    cache_on(gw.org)
    before = fake_provider_server.calls.get("/v1/chat/completions", 0)

    def stream():
        chunks = list(
            oai.chat.completions.create(
                model="fake-chat", messages=QUESTION, stream=True, extra_headers=SLOW
            )
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    texts = _burst(10, stream)
    assert fake_provider_server.calls.get("/v1/chat/completions", 0) == before + 1
    assert len(set(texts)) == 1
    assert texts[0]
    _assert_charged_once(gw, 10)


def test_when_the_filling_call_fails_the_waiters_each_ask_the_provider(
    gw, oai, cache_store, fake_provider_server
):
    cache_on(gw.org)
    before = fake_provider_server.calls.get("/v1/chat/completions", 0)

    def failing():
        with pytest.raises(openai.InternalServerError) as failure:
            oai.chat.completions.create(
                model="fake-chat",
                messages=QUESTION,
                extra_headers={**SLOW, "x-fake-fault": "500"},
            )
        return failure.value.status_code

    assert _burst(5, failing) == [500] * 5
    assert fake_provider_server.calls.get("/v1/chat/completions", 0) == before + 5
    assert [e.status for e in UsageEvent.objects.all()] == ["provider_error"] * 5
    assert gw.refresh().held == 0


def test_identical_requests_to_two_gateway_processes_reach_the_provider_once(
    gw, cache_store, fake_provider_server, tmp_path
):
    """Two gunicorn instances sharing the Redis store: 25 requests each, at once."""
    from django.conf import settings as django_settings

    cache_on(gw.org)
    db = connection.settings_dict
    env = {
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@127.0.0.1:{db['PORT'] or 5432}/"
        f"{db['NAME']}",
        "KT_RESPONSE_CACHE_URL": django_settings.KT_RESPONSE_CACHE_URL,
        "KT_UPSTREAM_ALLOW_HOSTS": fake_provider_server.base_url.split("://", 1)[1],
    }
    gateways = [GatewayProcess(env, workers=1, threads=32) for _ in range(2)]
    try:
        for n, gateway in enumerate(gateways):
            gateway.start(tmp_path / f"gunicorn-{n}.log")
        before = fake_provider_server.calls.get("/v1/chat/completions", 0)
        urls = [g.url for g in gateways]
        counter = iter(range(50))
        lock = threading.Lock()

        def post():
            with lock:
                url = urls[next(counter) % 2]
            return httpx.post(
                f"{url}/v1/chat/completions",
                json={"model": "fake-chat", "messages": QUESTION},
                headers={"Authorization": f"Bearer {KEY}", **SLOW},
                timeout=30,
            )

        replies = _burst(50, post)
    finally:
        for gateway in gateways:
            gateway.stop()
    assert [r.status_code for r in replies] == [200] * 50
    assert fake_provider_server.calls.get("/v1/chat/completions", 0) == before + 1
    assert len({r.json()["choices"][0]["message"]["content"] for r in replies}) == 1
    _assert_charged_once(gw, 50)
