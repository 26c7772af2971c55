"""Two real gateway servers (gunicorn, the project's configuration, one worker process each) on
one Redis: a rate limit is exact across them (N allowed, every other request a 429 with
OpenAI's headers), and a circuit opened through one is open in the other."""

import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection

from chargeback.models import ConsumerGroup
from gateway.models import UsageEvent
from tests.faults.gateway_process import GatewayProcess

from .conftest import GATEWAY_APPS, KEY, make_setup
from .routing_setup import BREAKER, FALLBACK, HELLO, configure, fail, two_targets

pytestmark = pytest.mark.django_db(transaction=True, available_apps=GATEWAY_APPS)
LIMIT = 10


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, fake_provider, fake_pair_servers, tmp_path_factory):
    """Two gateway processes on the test database and this run's Redis database."""
    assert os.environ.get("REDIS_URL"), "these tests need REDIS_URL: the store they share"
    db = connection.settings_dict
    urls = (fake_provider, fake_pair_servers.primary_url, fake_pair_servers.backup_url)
    hosts = [url.split("://", 1)[1] for url in urls]
    env = {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": os.environ["REDIS_URL"],
        "CELERY_TASK_ALWAYS_EAGER": "true",  # nothing queued for a worker nobody runs
        "KT_KEY_CACHE_SECONDS": "0",  # each test has its own organizations (flushed after)
        "KT_PRICE_CACHE_SECONDS": "0",
        "KT_UPSTREAM_ALLOW_HOSTS": ",".join(hosts),
    }
    logs = tmp_path_factory.mktemp("gateways")
    started = []
    try:
        for name in ("a", "b"):
            started.append(GatewayProcess(env).start(logs / f"{name}.log"))
        yield started
    finally:
        for process in started:
            process.stop()


def _post(server: GatewayProcess) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "fake-chat", "messages": HELLO, "max_tokens": 5},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    )


def test_a_rate_limit_is_exact_across_two_server_processes(servers, fake_provider):
    setup = make_setup(fake_provider)
    ConsumerGroup.objects.filter(pk=setup.group.pk).update(rpm_limit=LIMIT)

    with ThreadPoolExecutor(max_workers=30) as pool:
        replies = list(pool.map(_post, [servers[n % 2] for n in range(3 * LIMIT)]))

    served = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 429]
    assert (len(served), len(refused)) == (LIMIT, 2 * LIMIT), [r.text for r in replies]
    # Each admission saw the one shared bucket: every count from 9 down to 0 once.
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in served)
    assert remaining == list(range(LIMIT))
    by_server = {r.url.port for r in served}
    assert by_server == {s.port for s in servers}  # both processes admitted some
    for reply in refused:
        assert reply.headers["x-ratelimit-limit-requests"] == str(LIMIT)
        assert reply.headers["x-ratelimit-remaining-requests"] == "0"
        assert int(reply.headers["retry-after"]) >= 1
        assert reply.json()["error"]["code"] == "rate_limit_exceeded"
    assert UsageEvent.objects.count() == LIMIT


def test_a_circuit_opened_through_one_process_is_open_in_the_other(servers, fake_pair):
    setup = make_setup(fake_pair.primary_url)
    two_targets(setup, fake_pair)
    configure(setup, fallback=FALLBACK, circuit_breaker=BREAKER)
    fail(setup, "primary", "500")
    first, second = servers

    for _ in range(BREAKER["failure_threshold"]):
        assert _post(first).status_code == 200  # served by the backup
    assert _post(second).status_code == 200

    assert fake_pair.primary.posts == BREAKER["failure_threshold"]
    last = UsageEvent.objects.order_by("id").last()
    assert last.attempts == [{"target": "primary", "model": "fake-chat", "reason": "circuit_open"}]
