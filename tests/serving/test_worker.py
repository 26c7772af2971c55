"""The gunicorn worker the product ships (portal/gunicorn_worker.py), run as a real server
with the project's gunicorn settings: a kept-alive client's next request is served by the
thread that answered it, and nothing about keep-alive, pipelining or closing changes."""

import socket
import time

from tests.serving.client import read_response, request


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
