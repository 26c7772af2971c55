"""The gunicorn worker the product ships (chargeback/gunicorn_worker.py), run as a real server
with the project's gunicorn settings: a kept-alive client's next request is served by the
thread that answered it, and nothing about keep-alive, pipelining or closing changes."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def serve():
    """Start gunicorn with chargeback/gunicorn_conf.py on the echo app; yield its port."""
    procs = []

    def start(linger_ms: int, threads: int = 4) -> int:
        port = free_port()
        env = {
            **os.environ,
            "KT_HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_WORKERS": "1",
            "WEB_THREADS": str(threads),
            "WEB_KEEPALIVE_LINGER_MS": str(linger_ms),
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "chargeback/gunicorn_conf.py",
                "tests.serving.echo_app:app",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.05)
        raise AssertionError("gunicorn did not start")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def request(path: str, close: bool = False) -> bytes:
    connection = "close" if close else "keep-alive"
    return f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: {connection}\r\n\r\n".encode()


def read_response(sock: socket.socket, pending: bytearray) -> tuple[str, bytes]:
    """One response off the socket: (the thread id that served it, the path it saw)."""
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        pending += chunk
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        rest += chunk
    pending[:] = rest[length:]
    thread, path = rest[:length].split(b" ")
    return thread.decode(), path


def test_a_client_that_sends_at_once_keeps_the_thread_that_answered_it(serve):
    # One thread. Stock gthread gives it back to the pool after each response, so another
    # client's slow request takes it and A's next request waits a second behind that one.
    port = serve(linger_ms=2000, threads=1)
    with (
        socket.create_connection(("127.0.0.1", port)) as a,
        socket.create_connection(("127.0.0.1", port)) as b,
    ):
        pending_a, pending_b = bytearray(), bytearray()
        a.sendall(request("/a1"))
        first, _ = read_response(a, pending_a)
        b.sendall(request("/slow"))
        time.sleep(0.2)
        started = time.monotonic()
        a.sendall(request("/a2"))
        second, path = read_response(a, pending_a)
        waited = time.monotonic() - started
        # B is served once A has been quiet for the linger.
        assert read_response(b, pending_b)[1] == b"/slow"

    assert path == b"/a2"
    assert second == first
    assert waited < 0.5


def test_pipelined_requests_are_all_answered_in_order(serve):
    port = serve(linger_ms=5)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request("/a") + request("/b") + request("/c"))
        pending = bytearray()
        paths = [read_response(sock, pending)[1] for _ in range(3)]

    assert paths == [b"/a", b"/b", b"/c"]


def test_a_client_quiet_longer_than_the_linger_is_still_served_on_its_connection(serve):
    port = serve(linger_ms=20)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        pending = bytearray()
        sock.sendall(request("/first"))
        assert read_response(sock, pending)[1] == b"/first"
        time.sleep(0.3)  # the thread gave the connection back to the main loop meanwhile
        sock.sendall(request("/second"))
        assert read_response(sock, pending)[1] == b"/second"


def test_connection_close_is_honoured(serve):
    port = serve(linger_ms=2000)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        pending = bytearray()
        sock.sendall(request("/bye", close=True))
        assert read_response(sock, pending)[1] == b"/bye"
        assert sock.recv(1) == b""  # closed by the server, not left lingering
