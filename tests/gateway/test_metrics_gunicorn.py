"""/metrics under the gunicorn the gateway ships with, two workers: the counters both workers
wrote add up to the calls made (a worker that exits keeps its counts), the values match the
books, and only the token or an allowed address may scrape."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Sum
from prometheus_client.parser import text_string_to_metric_families

from gateway.models import UsageEvent
from observability.gauges import SNAPSHOT_KEY
from tests.factories import ConsumerGroupFactory, DepartmentFactory
from tests.gateway.conftest import GATEWAY_APPS, KEY, make_setup
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scrape-token-for-tests"
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "Hello"}]}

pytestmark = pytest.mark.django_db(transaction=True, available_apps=GATEWAY_APPS)


def _wait_listening(proc, port):
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.05)


def _gunicorn(tmp_path_factory, fake_provider, workers: int, **extra):
    """gunicorn -c portal/gunicorn_conf.py on the test database and Redis."""
    db = connection.settings_dict
    port = free_port()
    multiproc = tmp_path_factory.mktemp("metrics")
    (multiproc / "counter_999999.db").write_bytes(b"left by a previous run")
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "true",  # nothing queued for a worker that is not there
        "KT_HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_WORKERS": str(workers),
        "WEB_THREADS": "8",
        "KT_KEY_CACHE_SECONDS": "0",
        "KT_PRICE_CACHE_SECONDS": "0",
        "KT_FAKE_PROVIDER_URL": fake_provider,
        "KT_UPSTREAM_ALLOW_HOSTS": fake_provider.split("://", 1)[1],
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "KT_METRICS_ENABLED": "true",
        "KT_METRICS_TOKEN": TOKEN,
        "KT_METRICS_ALLOW_IPS": "192.0.2.0/24",  # not loopback: the token is needed here
        **extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "portal/gunicorn_conf.py", "portal.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _wait_listening(proc, port)
    _wait_workers(proc, workers)
    proc.base_url = f"http://127.0.0.1:{port}"
    proc.multiproc = multiproc
    return proc


def _wait_workers(proc, count: int, besides: set[int] = frozenset()) -> set[int]:
    """The master's workers once `count` of them (none of `besides`) are up."""
    deadline = time.monotonic() + 60
    while len(found := _workers(proc.pid) - besides) < count:
        assert time.monotonic() < deadline, f"gunicorn did not start {count} workers"
        time.sleep(0.1)
    return found


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, fake_provider, tmp_path_factory):
    """2 workers, each applying its queued metric updates every 0.25 s (the default)."""
    proc = _gunicorn(tmp_path_factory, fake_provider, 2)
    yield proc
    proc.terminate()
    proc.wait(timeout=30)


def _workers(master_pid: int) -> set[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(master_pid)], capture_output=True, text=True
    ).stdout
    return {int(pid) for pid in out.split()}


def _call(base_url: str, key: str = KEY, body: dict = CHAT) -> httpx.Response:
    # A new connection per call: the kernel spreads them over both workers' accept loops.
    with httpx.Client(base_url=base_url, timeout=30) as client:
        return client.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        )


def _scrape(base_url: str) -> dict:
    """{(name, frozenset(labels)): value} of every sample."""
    response = httpx.get(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def _scrape_until(base_url: str, expected: list, seconds: float = 30) -> dict:
    """The first scrape in which every (name, labels, value) of `expected` holds, or the last
    one when `seconds` pass without (the caller's assertions then say which does not)."""
    deadline = time.monotonic() + seconds
    while True:
        samples = _scrape(base_url)
        settled = all(
            _total(samples, name, **labels) == pytest.approx(value, abs=1e-9)
            for name, labels, value in expected
        )
        if settled or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def _counters(samples: dict) -> dict:
    kinds = ("kt_gateway_", "kt_spend", "kt_tokens", "kt_holds_resolved")
    return {key: value for key, value in samples.items() if key[0].startswith(kinds)}


def _total(samples: dict, name: str, **labels) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def test_counters_of_both_workers_add_up_to_the_calls_made(server, fake_provider):
    setup = make_setup(fake_provider)
    broke = DepartmentFactory(organization=setup.org, team_id="team_broke")  # no wallet: 402
    ConsumerGroupFactory(department=broke, name="broke", key="kt_cg_broke_metrics")
    limited = ConsumerGroupFactory(
        department=setup.department, name="limited", key="kt_cg_limited_metrics", rpm_limit=1
    )
    assert not list(server.multiproc.glob("counter_999999.db")), "cleared at start"
    workers = _workers(server.pid)
    assert len(workers) == 2

    stream = {**CHAT, "stream": True}
    with ThreadPoolExecutor(16) as pool:
        first = list(
            pool.map(
                lambda i: _call(server.base_url, body=stream if i % 4 == 0 else CHAT), range(40)
            )
        )
    assert [r.status_code for r in first] == [200] * 40
    writers = {int(p.stem.split("_")[-1]) for p in server.multiproc.glob("counter_*.db")}
    assert workers <= writers, "both workers served calls and counted them"

    # A worker that exits (restarted by the master) keeps what it counted.
    os.kill(min(workers), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while len(_workers(server.pid) - workers) < 1:
        assert time.monotonic() < deadline, "the master did not replace the worker"
        time.sleep(0.1)
    with ThreadPoolExecutor(8) as pool:
        second = list(pool.map(lambda _: _call(server.base_url), range(10)))
    assert [r.status_code for r in second] == [200] * 10
    refused_funds = _call(server.base_url, key="kt_cg_broke_metrics")
    assert refused_funds.status_code == 402
    limits = [_call(server.base_url, key="kt_cg_limited_metrics") for _ in range(2)]
    assert [r.status_code for r in limits] == [200, 429]
    assert limited.rpm_limit == 1

    events = UsageEvent.objects.filter(status="ok")
    books = events.aggregate(
        cost=Sum("cost"), prompt=Sum("prompt_tokens"), out=Sum("completion_tokens")
    )
    assert events.count() == 51
    labels = {"organization": "acme", "department": "team_engineering", "model": "fake-chat"}
    expected = [
        ("kt_gateway_requests_total", {**labels, "status": "ok"}, 51),
        ("kt_gateway_requests_total", {"status": "rejected", "department": "team_broke"}, 1),
        ("kt_gateway_refusals_total", {"status": "402", "endpoint": "chat"}, 1),
        ("kt_gateway_refusals_total", {"status": "429", "endpoint": "chat"}, 1),
        ("kt_gateway_request_duration_seconds_count", {"model": "fake-chat"}, 52),
        ("kt_gateway_provider_duration_seconds_count", {"provider": "fake"}, 51),
        ("kt_gateway_time_to_first_token_seconds_count", {}, 10),
        ("kt_holds_resolved_total", {"outcome": "captured"}, 51),
        # Prometheus counts in floats: the books' Decimal sum to far below a cent.
        ("kt_spend_total", {**labels, "currency": "USD"}, float(books["cost"])),
        ("kt_tokens_total", {**labels, "kind": "prompt"}, books["prompt"]),
        ("kt_tokens_total", {**labels, "kind": "completion"}, books["out"]),
    ]
    cache.delete(SNAPSHOT_KEY)  # a snapshot an earlier test left (the server shares the cache)
    # The worker answering applies its own queue first; the other's thread applies its queue
    # within KT_METRICS_FLUSH_SECONDS: the figures settle on the books' (and stay there).
    samples = _scrape_until(server.base_url, expected)
    for name, wanted, value in expected:
        assert _total(samples, name, **wanted) == pytest.approx(value, abs=1e-9), (name, wanted)
    again = _counters(_scrape(server.base_url))
    assert again == _counters(samples), "settled: nothing more applied, nothing counted twice"

    # The gauges: a snapshot of the wallet as the books have it now.
    setup.refresh()
    available = setup.wallet.balance - setup.wallet.held
    gauge = _total(
        samples, "kt_wallet_available", organization="acme", department="team_engineering"
    )
    assert gauge == pytest.approx(float(available), abs=1e-9)


def test_only_the_token_or_an_allowed_address_may_scrape(server):
    url = f"{server.base_url}/metrics"
    assert httpx.get(url).status_code == 403  # loopback is not in this server's allow-list
    wrong = httpx.get(url, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 403
    assert json.loads(wrong.text)["detail"].startswith("Not allowed")
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # The probes need nothing.
    assert httpx.get(f"{server.base_url}/healthz").status_code == 200


def test_a_scrape_applies_its_own_queue_and_a_stopping_worker_applies_its_own(
    fake_provider, tmp_path_factory
):
    """One worker whose thread never flushes (KT_METRICS_FLUSH_SECONDS: an hour): the calls
    count at a scrape all the same (the scrape applies the queue of the worker answering it),
    and the calls made after it count once the worker has stopped gracefully (it applies the
    rest on its way out), in the same files its replacement is summed with."""
    make_setup(fake_provider)
    lone = _gunicorn(tmp_path_factory, fake_provider, 1, KT_METRICS_FLUSH_SECONDS="3600")
    try:
        ok = {"organization": "acme", "model": "fake-chat", "status": "ok"}
        (first,) = _wait_workers(lone, 1)
        assert [_call(lone.base_url).status_code for _ in range(5)] == [200] * 5
        assert _total(_scrape(lone.base_url), "kt_gateway_requests_total", **ok) == 5

        assert [_call(lone.base_url).status_code for _ in range(3)] == [200] * 3
        os.kill(first, signal.SIGTERM)
        _wait_workers(lone, 1, besides={first})
        samples = _scrape(lone.base_url)  # the new worker has queued nothing
        assert _total(samples, "kt_gateway_requests_total", **ok) == 8
        assert _total(samples, "kt_holds_resolved_total", outcome="captured") == 8
    finally:
        lone.terminate()
        lone.wait(timeout=30)
