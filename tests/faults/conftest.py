"""Fault tests on real parts: the gateway under gunicorn (the project's settings and worker
class) whose DATABASE_URL points at a TCP proxy the test controls, in front of the shared
PostgreSQL (the server itself is never touched); the fake provider on loopback, noting which
calls it received and answered in full."""

import threading
import time
from dataclasses import dataclass, field

import pytest
from django.db import connection

from gateway.fake_provider import FakeProviderHandler, FakeProviderServer
from tests.faults.gateway_process import GatewayProcess
from tests.faults.tcp_proxy import TcpProxy
from tests.gateway.conftest import make_setup

# Live data, committed (the gateway is another process); flushed after each test.
live_db = pytest.mark.django_db(
    transaction=True, available_apps=["chargeback", "wallets", "gateway", "budgets", "reports"]
)


@dataclass
class Provider:
    url: str
    received: set = field(default_factory=set)  # x-fake-call values of requests that arrived
    answered: set = field(default_factory=set)  # ... and were answered in full

    def clear(self):
        self.received.clear()
        self.answered.clear()


@pytest.fixture(scope="session")
def provider():
    state = Provider(url="")
    lock = threading.Lock()

    class Recording(FakeProviderHandler):
        def do_POST(self):
            call = self.headers.get("x-fake-call")
            if call is not None:
                with lock:
                    state.received.add(call)
            super().do_POST()
            self.wfile.flush()
            if call is not None:
                with lock:
                    state.answered.add(call)

    server = FakeProviderServer(("127.0.0.1", 0), Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    state.url = f"http://{host}:{port}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def tenants(provider, transactional_db):
    """The gateway tests' setup (tests/gateway/conftest.py make_setup), committed: Acme with
    the seed's engineering key and a $10 team wallet, and an outsider organization ($5)."""
    provider.clear()
    return make_setup(provider.url)


@pytest.fixture
def pg_proxy():
    """A TCP proxy in front of the shared PostgreSQL."""
    settings = connection.settings_dict
    proxy = TcpProxy((settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def outbox_dir(tmp_path):
    return tmp_path / "outbox"


@pytest.fixture
def gateway(pg_proxy, provider, outbox_dir, tmp_path):
    """Start the gateway under gunicorn (1 worker) with the database behind `pg_proxy`:
    `gateway(**env)`; stopped after the test."""
    started = []
    settings = connection.settings_dict

    def start(**env) -> GatewayProcess:
        user = settings["USER"] or "postgres"
        database_url = f"postgres://{user}@127.0.0.1:{pg_proxy.port}/{settings['NAME']}"
        process = GatewayProcess(
            {
                "DATABASE_URL": database_url,
                "KT_CAPTURE_OUTBOX_DIR": str(outbox_dir),
                "KT_KEY_CACHE_SECONDS": "60",  # a warm gateway: keys, targets, prices cached
                "DB_POOL_TIMEOUT": "2",
                # The fake provider on loopback, allowed as an operator would (gateway/egress.py
                # where upstream address rules exist).
                "KT_UPSTREAM_ALLOW_HOSTS": provider.url.split("://", 1)[1],
                **{k: str(v) for k, v in env.items()},
            },
            workers=1,
            threads=32,
        )
        started.append(process)
        return process.start(tmp_path / f"gunicorn-{len(started)}.log")

    yield start
    for process in started:
        process.stop()


def wait_for(condition, timeout: float = 30, interval: float = 0.05, what: str = "condition"):
    """Poll `condition` until it is true (the event it waits for happened); its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
