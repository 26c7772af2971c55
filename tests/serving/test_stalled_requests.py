"""Clients that stop halfway through a request, or never close, against the real server with
one thread (so a thread held by one client is a server that answers nobody else): the worker
gives the thread back or bounds how long it waits, and its main loop never waits on a client."""

import socket
import time

from tests.serving.client import read_response, request

BODY_TIMEOUT = 1.0


def post(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def answered_within(port: int, seconds: float, path: str = "/other") -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        sock.sendall(request(path, close=True))
        try:
            return read_response(sock, bytearray())[1] == path.encode()
        except TimeoutError:
            return False


def read_all(sock: socket.socket) -> bytes:
    received = bytearray()
    while chunk := sock.recv(65536):
        received += chunk
    return bytes(received)


def test_a_kept_alive_client_that_sends_half_its_next_head_does_not_keep_the_thread(serve):
    # The thread that answered waits up to the linger for the next request, and the next
    # request's first bytes come at once: it must not then wait for the rest of the head.
    port = serve(linger_ms=2000, threads=1)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        pending = bytearray()
        sock.sendall(request("/a1"))
        assert read_response(sock, pending)[1] == b"/a1"
        rest = request("/a2")
        sock.sendall(rest[:20])

        assert answered_within(port, 1.0)
        sock.sendall(rest[20:])
        assert read_response(sock, pending)[1] == b"/a2"


def test_half_a_pipelined_head_behind_a_request_does_not_keep_the_thread(serve):
    port = serve(linger_ms=2000, threads=1)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        pending = bytearray()
        second = request("/p2")
        sock.sendall(request("/p1") + second[:20])
        assert read_response(sock, pending)[1] == b"/p1"

        assert answered_within(port, 1.0)
        sock.sendall(second[20:])
        assert read_response(sock, pending)[1] == b"/p2"


def test_a_body_that_stops_arriving_is_a_408_and_frees_the_thread(serve):
    port = serve(threads=1, WEB_BODY_TIMEOUT=str(BODY_TIMEOUT))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(post("/body", 100) + b'{"model": ')
        answer = read_all(sock)
        took = time.monotonic() - started

        assert answered_within(port, 1.0)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b'"code":"request_timeout"' in body
    assert BODY_TIMEOUT - 0.1 < took < BODY_TIMEOUT + 1.5


def test_a_body_trickling_in_below_the_minimum_rate_is_a_408(serve):
    # Never idle for as long as the body timeout, but 5 bytes a second against 100 required.
    port = serve(threads=1, WEB_BODY_TIMEOUT=str(BODY_TIMEOUT), WEB_BODY_MIN_RATE="100")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(post("/body", 1000))
        answer = b""
        while time.monotonic() - started < 5:
            try:
                sock.sendall(b" ")
            except OSError:  # closed after the 408
                break
            time.sleep(0.2)
            sock.setblocking(False)
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
            if answer:
                break
        took = time.monotonic() - started

    assert answer.startswith(b"HTTP/1.1 408")
    assert took < BODY_TIMEOUT + 1.5


def test_a_body_with_pauses_shorter_than_the_timeout_is_read_whole(serve):
    port = serve(threads=1, WEB_BODY_TIMEOUT=str(BODY_TIMEOUT))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(post("/body", 30) + b"x" * 10)
        time.sleep(BODY_TIMEOUT / 2)
        sock.sendall(b"x" * 10)
        time.sleep(BODY_TIMEOUT / 2)
        sock.sendall(b"x" * 10)
        assert read_response(sock, bytearray())[1] == b"30"


def test_a_body_larger_than_the_buffer_streams_to_the_application_with_the_same_bounds(serve):
    port = serve(threads=1, WEB_BODY_TIMEOUT=str(BODY_TIMEOUT), WEB_BODY_BUFFER_BYTES="1000")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(post("/body", 5000) + b"x" * 2000)
        time.sleep(BODY_TIMEOUT / 2)
        sock.sendall(b"x" * 3000)
        assert read_response(sock, bytearray())[1] == b"5000"


def test_clients_that_never_close_after_connection_close_do_not_stall_the_worker(serve):
    # gunicorn waits for the client's FIN after its own (up to 2 s each); in its main loop,
    # that froze the whole worker for 2 s per such client.
    port = serve(threads=4)
    holders = []
    try:
        for i in range(20):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(request(f"/h{i}", close=True))  # and never read nor close
            holders.append(sock)
        time.sleep(0.2)

        assert all(answered_within(port, 0.5) for _ in range(5))
    finally:
        for sock in holders:
            sock.close()


def test_a_worker_out_of_file_descriptors_pauses_accepting_and_recovers(serve):
    # Stock gthread lets EMFILE out of accept(): the worker dies with every connection it had.
    port = serve(threads=4, limit_files=64)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request("/pid"))
        pid_before = read_response(sock, bytearray())[1]
    flood = []
    try:
        for _ in range(100):  # more than the worker has descriptors for
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        deadline = time.monotonic() + 10
        while "pausing accept" not in serve.log(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "pausing accept" in serve.log(port)
    finally:
        for sock in flood:
            sock.close()

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request("/pid"))
        assert read_response(sock, bytearray())[1] == pid_before


def test_a_head_sent_one_byte_at_a_time_is_answered_when_its_last_byte_arrives(serve):
    port = serve(threads=1)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in request("/bytewise", close=True):
            sock.sendall(bytes([byte]))
            time.sleep(0.002)  # each byte its own segment, each its own read by the server

        assert read_response(sock, bytearray())[1] == b"/bytewise"


def test_a_head_with_bare_line_feeds_is_refused_at_once_not_at_the_deadline(serve):
    port = serve(threads=1, WEB_HEADER_TIMEOUT="30")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /x HTTP/1.1\nHost: t\n")  # and never the blank line
        answer = read_all(sock)

    assert answer.startswith(b"HTTP/1.1 400")
    assert time.monotonic() - started < 2
