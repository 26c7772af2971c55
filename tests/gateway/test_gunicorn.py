"""The gateway under the gunicorn it ships with (portal/gunicorn_conf.py and its worker),
spoken to over raw sockets: request bodies sent chunked, bodies the gateway does not read (413,
a 401 before the body) and what becomes of the connection, and header names gunicorn drops."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from gateway.models import UsageEvent
from tests.ports import free_port

from .conftest import GATEWAY_APPS, KEY, OUTSIDER_KEY, make_setup

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 4_000  # KT_MAX_BODY_BYTES of this server
WSGI_APP = "portal.wsgi:application"
HELLO = {"model": "fake-chat", "messages": [{"role": "user", "content": "Hello"}]}

pytestmark = pytest.mark.django_db(transaction=True, available_apps=GATEWAY_APPS)


@pytest.fixture(scope="module")
def gunicorn(django_db_setup, django_db_blocker, fake_provider):
    """gunicorn -c portal/gunicorn_conf.py on the test database; yields its port."""
    db = connection.settings_dict
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": "",  # local cache, eager tasks: nothing queued for a worker
        "KT_HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_WORKERS": "1",
        "WEB_THREADS": "4",
        "KT_MAX_BODY_BYTES": str(LIMIT),
        "KT_KEY_CACHE_SECONDS": "0",  # each test has its own organizations (flushed after)
        "KT_PRICE_CACHE_SECONDS": "0",
        # The fake provider is the operator's (allowed where upstream addresses are checked).
        "KT_FAKE_PROVIDER_URL": fake_provider,
        "KT_UPSTREAM_ALLOW_HOSTS": fake_provider.split("://", 1)[1],
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "portal/gunicorn_conf.py", WSGI_APP],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def books(fake_provider):
    return make_setup(fake_provider)


def _head(path: str, key: str = KEY, **headers) -> bytes:
    lines = [f"POST /v1/{path} HTTP/1.1", "Host: gateway", f"Authorization: Bearer {key}"]
    lines += ["Content-Type: application/json", "anthropic-version: 2023-06-01"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunked(body: bytes, size: int = 7) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


class Reader:
    """Responses off one socket, one at a time (Content-Length or chunked bodies)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            assert self._fill(), "the server closed the connection"
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            assert self._fill(), "the server closed the connection mid-body"
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self) -> tuple[int, dict, bytes]:
        status = int(self._line().split()[1])
        headers = {}
        while line := self._line():
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            return status, headers, self._take(int(headers["content-length"]))
        body = b""
        while size := int(self._line(), 16):
            body += self._take(size)
            self._take(2)
        self._take(2)
        return status, headers, body

    def closed(self, timeout: float = 5) -> bool:
        """Whether the server closes the connection (nothing more is sent before it does)."""
        self.sock.settimeout(timeout)
        try:
            return not self._fill()
        except ConnectionResetError:
            return True


def _connect(port: int) -> tuple[socket.socket, Reader]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock, Reader(sock)


def test_a_chunked_body_is_read_and_the_connection_kept(gunicorn, books):
    body = json.dumps(HELLO).encode()
    sock, reader = _connect(gunicorn)
    with sock:
        sock.sendall(_head("chat/completions", **{"Transfer-Encoding": "chunked"}) + _chunked(body))
        status, headers, reply = reader.response()
        assert status == 200, reply
        assert json.loads(reply)["choices"][0]["message"]["content"]
        assert headers.get("connection", "keep-alive").lower() != "close"
        # The same connection serves the next request.
        sock.sendall(_head("chat/completions", **{"Content-Length": len(body)}) + body)
        assert reader.response()[0] == 200
    costs = list(UsageEvent.objects.values_list("cost", flat=True))
    assert len(costs) == 2
    assert books.refresh().balance == Decimal("10.00") - sum(costs)


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_a_413_that_closes_the_connection(gunicorn, books, chunked):
    big = json.dumps({**HELLO, "messages": [{"role": "user", "content": "x" * 50_000}]}).encode()
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": len(big)}
    body = _chunked(big, size=4_096) if chunked else big
    sock, reader = _connect(gunicorn)
    with sock:
        # The whole body, and the client's next request right behind it.
        sock.sendall(_head("chat/completions", **framing) + body)
        small = json.dumps(HELLO).encode()
        with contextlib.suppress(OSError):  # the server may already have closed its end
            sock.sendall(_head("chat/completions", **{"Content-Length": len(small)}) + small)
        status, headers, reply = reader.response()
        assert status == 413
        assert json.loads(reply)["error"]["code"] == "request_too_large"
        assert headers["connection"].lower() == "close"
        assert reader.closed()
    assert not UsageEvent.objects.exists()
    assert books.refresh().held == 0


def test_a_401_before_the_body_was_read_closes_the_connection(gunicorn, books):
    body = json.dumps({**HELLO, "messages": [{"role": "user", "content": "x" * 3_000}]}).encode()
    sock, reader = _connect(gunicorn)
    with sock:
        head = _head(
            "chat/completions", key="kt_wrong_key_0123456789", **{"Content-Length": len(body)}
        )
        sock.sendall(head + body)
        status, headers, _ = reader.response()
        assert status == 401
        assert headers["connection"].lower() == "close"
        assert reader.closed()


def test_fake_provider_options_need_hyphens_because_gunicorn_drops_underscores(gunicorn, books):
    body = json.dumps({**HELLO, "max_tokens": 8}).encode()
    sock, reader = _connect(gunicorn)
    with sock:
        for name in ("x-fake-cache-write", "x-fake-cache_write"):
            head = _head(
                "messages", **{name: "4", "x-fake-cached": "2", "Content-Length": len(body)}
            )
            sock.sendall(head + body)
            assert reader.response()[0] == 200
    hyphen, underscore = UsageEvent.objects.order_by("id")
    assert (hyphen.cached_tokens, hyphen.cache_write_tokens) == (2, 4)
    assert (underscore.cached_tokens, underscore.cache_write_tokens) == (2, 0)


def test_another_organizations_chunked_request_is_charged_to_its_own_wallet(gunicorn, books):
    body = json.dumps({**HELLO, "model": "outsider-only"}).encode()
    sock, reader = _connect(gunicorn)
    with sock:
        head = _head("chat/completions", key=OUTSIDER_KEY, **{"Transfer-Encoding": "chunked"})
        sock.sendall(head + _chunked(body))
        assert reader.response()[0] == 200
    event = UsageEvent.objects.get()
    assert event.organization == books.outsider_org
    books.outsider_wallet.refresh_from_db()
    assert books.outsider_wallet.balance == Decimal("5.00") - event.cost
    assert books.refresh().balance == Decimal("10.00")
