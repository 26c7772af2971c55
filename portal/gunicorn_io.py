"""Reading requests for the gunicorn worker (portal/gunicorn_worker.py) so that a slow or
stalled client cannot hold a thread: what counts as a complete request head, and request-body
reads that give up.

A client is never timed out while it *reads* a response: an LLM stream lasts minutes and a
slow reader only costs its own thread, which the upstream call holds anyway. Timeouts apply to
what the server waits for from the client: the head (in the worker's main loop, no thread) and
the body (in the thread, bounded here).
"""

import os
import resource
import select
import socket
import time

from gunicorn.http.unreader import SocketUnreader

# The whole request head must arrive within this many seconds of the connection being accepted,
# or of a kept-alive connection sending its first byte of the next request.
HEADER_TIMEOUT = float(os.environ.get("WEB_HEADER_TIMEOUT", "10"))
# A request body may pause at most this long between two reads, and must arrive at
# WEB_BODY_MIN_RATE bytes/s on average after its first WEB_BODY_TIMEOUT seconds.
BODY_TIMEOUT = float(os.environ.get("WEB_BODY_TIMEOUT", "10"))
BODY_MIN_RATE = float(os.environ.get("WEB_BODY_MIN_RATE", "1024"))
# Bodies up to this size (the gateway's own limit by default) are read in full before the
# application runs, so a body that stops arriving is a 408 from the worker, not an error in a
# view halfway through reading it. Larger bodies stream to the application with the same bounds.
BODY_BUFFER = int(
    os.environ.get("WEB_BODY_BUFFER_BYTES", os.environ.get("KT_MAX_BODY_BYTES", str(4 << 20)))
)
# One read from a connection waiting for its head: large enough that a typical request arrives
# with its body in one go (gunicorn's own reads are 8 KiB).
HEAD_READ = 64 * 1024

_TIMEOUT_BODY = (
    b'{"error":{"message":"The request body did not arrive in time.",'
    b'"type":"invalid_request_error","param":null,"code":"request_timeout"}}'
)
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class RequestTimeout(TimeoutError):
    """The client stopped sending its request (gunicorn closes a connection whose body failed)."""


def head_ready(data: bytes, limit: int, before: bytes = b"", size: int = 0) -> bool:
    """Whether a thread can parse the buffered head without waiting for more: the head is
    complete, or the parser will reject it at once (too long, or a line ending in a bare LF,
    which gunicorn refuses rather than waits on).

    `data` is what just arrived, `before` the last 3 bytes buffered before it and `size` all
    that is buffered now: each byte is looked at once, however many pieces the head comes in
    (a client sending a byte at a time must not make the main loop rescan its buffer)."""
    window = before + data
    return (
        b"\r\n\r\n" in window
        or max(size, len(window)) > limit
        or (b"\n" in data and data.count(b"\n") != (before[-1:] + data).count(b"\r\n"))
    )


def head_limit(cfg) -> int:
    """The longest head gunicorn's parser accepts with these settings (it rejects anything
    longer itself, so a connection that passes this is handed over to get its 400)."""
    fields = cfg.limit_request_fields or 100
    field_size = cfg.limit_request_field_size or 8190
    line = cfg.limit_request_line or 8190
    return line + fields * (field_size + 2) + 8


def readable(sock, seconds: float) -> bool:
    poller = select.poll()  # not select.select: sockets may be numbered above FD_SETSIZE
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(max(seconds, 0.0) * 1000))


class BoundedUnreader(SocketUnreader):
    """gunicorn's socket reader, with reads that wait at most BODY_TIMEOUT and give up on a body
    slower than BODY_MIN_RATE (raising RequestTimeout).

    The socket stays blocking, as gunicorn's thread expects for writing the response; a read
    first tries without waiting (MSG_DONTWAIT), which costs nothing when the bytes are there,
    and only then polls. A socket with a timeout set (gunicorn's bounded body drain) keeps
    its own.
    """

    def __init__(self, sock):
        super().__init__(sock)
        self.begin()

    def begin(self) -> None:
        """A new request: its body's time starts now."""
        self.started = time.monotonic()
        self.received = 0

    def chunk(self, size_hint=None):
        size = self.mxchunk
        if size_hint and size_hint > size:
            size = min(size_hint, self.max_body_chunk)
        while True:
            try:
                data = self.sock.recv(size, socket.MSG_DONTWAIT)
            except BlockingIOError:
                self._wait()
                continue
            self.received += len(data)
            return data

    def _wait(self) -> None:
        allowed = self.started + BODY_TIMEOUT + self.received / BODY_MIN_RATE
        left = min(BODY_TIMEOUT, allowed - time.monotonic())
        if left <= 0 or not readable(self.sock, left):
            raise RequestTimeout("the client stopped sending its request")

    def fill(self, length: int) -> bool:
        """Read until `length` bytes are buffered (or the client closed): False when they did
        not arrive in time."""
        self.buf.seek(0, os.SEEK_END)
        missing = length - self.buf.tell()
        try:
            while missing > 0:
                data = self.chunk(missing)
                if not data:  # closed: the application sees the short body, as before
                    return True
                self.buf.write(data)
                missing -= len(data)
        except RequestTimeout:
            return False
        return True


def raise_open_files_limit(needed: int, log) -> None:
    """Lift the soft limit on open files towards `needed` (at most the hard limit): every
    connection a worker keeps is a file descriptor, and many systems start processes at 1,024,
    below what one worker is configured to hold."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        target = soft
    if target < needed:
        log.warning(
            "Open files limit %s is below the %s this worker may need "
            "(worker_connections plus threads); raise `ulimit -n`.",
            target,
            needed,
        )
