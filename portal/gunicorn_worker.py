"""gunicorn's gthread worker, with two changes: a thread is given a connection only once its
request head has arrived, and a busy keep-alive connection stays on the thread that served it.

Slow clients. Stock gthread hands a new connection (and a kept-alive one that turns readable)
to a pool thread, which then blocks until the whole request head has arrived, with no time
limit: 1,100 connections that each sent half a head held every thread of a 2 x 512 instance
and no other request was answered again (docs/reliability.md). Here the main loop reads the
head without blocking and submits the connection only when the head is complete; one that is
still incomplete WEB_HEADER_TIMEOUT seconds after it was accepted (or, kept alive, after its
next request began) is closed. The body is read in the thread with bounded waits
(portal/gunicorn_io.py). Responses have no timeout at all: a stream lasts as long as the
provider takes, and a client reading slowly holds only its own thread. Closing a connection
(`Connection: close`, an error) no longer waits in the main loop for the client to close its
side (gunicorn lingers there up to 2 s, during which the worker accepts and serves nothing):
the linger is polled like any other socket.

Keep-alive. Stock gthread hands every request twice between threads: the main loop polls the
kept-alive socket and submits it to the pool, and when the response is written the thread
passes the connection back to the main loop to be polled again. For a client that sends its
next request as soon as it has the answer (an SDK in a loop, a batch job, a load test) those
hand-offs and the main loop's bookkeeping cost a fifth to a third of the gateway's CPU per
request and two thread wake-ups of latency (docs/performance.md). Here the thread that answered
waits a few milliseconds for the same client's next request and serves it itself; a connection
that stays quiet longer goes back to the main loop exactly as before, so idle clients cost no
thread. The next head is read without waiting, as the main loop does: a client that sends half
of it goes back to the main loop too.

It also closes the connection when the application asks (CLOSE_CONNECTION): the gateway does
when it answered before reading the request's body (gateway/middleware.py), whose bytes must
not be parsed as the next request.

TLS, HTTP/2, uWSGI and the PROXY protocol (none of which the project configures) keep stock
gthread's reading.
"""

import contextlib
import errno
import os
import selectors
import socket
import time
from collections import deque
from functools import partial

from gunicorn.http.body import LengthReader
from gunicorn.http.parser import RequestParser
from gunicorn.workers.gthread import TConn, ThreadWorker

from gateway.middleware import CLOSE_CONNECTION
from portal.gunicorn_io import (
    BODY_BUFFER,
    HEAD_READ,
    HEADER_TIMEOUT,
    TIMEOUT_RESPONSE,
    BoundedUnreader,
    head_limit,
    head_ready,
    raise_open_files_limit,
    readable,
)

# How long a thread waits for a kept-alive client's next request before handing the connection
# back to the main loop (seconds).
LINGER = float(os.environ.get("WEB_KEEPALIVE_LINGER_MS", "5")) / 1000
# Closing: how long the main loop keeps reading (and dropping) what the client still sends after
# our FIN, so that unread request bytes do not make the kernel reset the connection before the
# client has read the last response (RFC 9112 section 9.6); gunicorn's own figures.
CLOSE_LINGER = 2.0
CLOSE_DRAIN = 64 * 1024
# After accept() failed for lack of file descriptors, stop accepting for this long rather than
# spin on a listener that stays readable.
ACCEPT_PAUSE = 0.5


class GatewayThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # (deadline, conn) in deadline order: each deque's deadlines are now + a constant.
        self.awaiting_head = deque()
        self.closing = deque()
        self.accept_paused_until = 0.0
        cfg = self.cfg
        self.reads_heads = (
            not cfg.is_ssl
            and getattr(cfg, "protocol", "http") == "http"
            and "h2" not in getattr(cfg, "http_protocols", ("h1",))
            and str(getattr(cfg, "proxy_protocol", "off")).lower() in ("off", "false")
        )
        self.head_limit = head_limit(cfg)

    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = closing_on_request(self.wsgi)

    def init_process(self):
        # A connection is a descriptor, an upstream call another; plus pools, logs, listeners.
        raise_open_files_limit(self.cfg.worker_connections + 2 * self.cfg.threads + 256, self.log)
        super().init_process()

    # --- main loop ---

    def accept(self, listener):
        if self.reads_heads:
            self.accept_reading_heads(listener)
        else:
            super().accept(listener)

    def accept_reading_heads(self, listener):
        try:
            sock, client = listener.accept()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self.log.warning("Cannot accept a connection: %s; pausing accept", e)
                self.accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                self.set_accept_enabled(False)
            elif e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, sock, client, listener.getsockname())  # non-blocking
        conn.initialized = True
        conn.parser = RequestParser(self.cfg, sock, client)
        conn.parser.unreader = BoundedUnreader(sock)
        conn.reads_heads = True
        self.await_head(conn)

    def set_accept_enabled(self, enabled):
        if enabled and time.monotonic() < self.accept_paused_until:
            enabled = False
        super().set_accept_enabled(enabled)

    def await_head(self, conn, registered=False):
        """Poll `conn` (non-blocking) until its head is complete, closing it at the deadline."""
        conn.deadline = deadline = time.monotonic() + HEADER_TIMEOUT
        self.awaiting_head.append((deadline, conn))
        callback = partial(self.on_head_readable, conn)
        if registered:
            self.poller.modify(conn.sock, selectors.EVENT_READ, callback)
        else:
            self.poller.register(conn.sock, selectors.EVENT_READ, callback)

    def on_head_readable(self, conn, _sock):
        ready = self.read_head(conn)
        if ready is False:
            return
        conn.deadline = None
        if ready is None:
            self.drop(conn)
            return
        self.poller.unregister(conn.sock)
        self.enqueue_req(conn)

    def on_client_socket_readable(self, conn, client):
        if getattr(conn, "reads_heads", False):
            self.on_kept_alive_readable(conn, client)
        else:
            super().on_client_socket_readable(conn, client)

    def on_kept_alive_readable(self, conn, client):
        self.keepalived_conns.remove(conn)
        ready = self.read_head(conn)
        if ready:
            self.poller.unregister(client)
            self.enqueue_req(conn)
        elif ready is None:
            self.drop(conn)
        else:
            self.await_head(conn, registered=True)

    def read_head(self, conn) -> bool | None:
        """Read what the client sent: True when the head is complete, False to wait for more,
        None when the connection is closed or broken."""
        try:
            data = conn.sock.recv(HEAD_READ)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return None
        if not data:
            return None
        buf = conn.parser.unreader.buf
        size = buf.seek(0, os.SEEK_END)
        before = b""
        if size:
            buf.seek(max(0, size - 3))
            before = buf.read()
        buf.write(data)
        return head_ready(data, self.head_limit, before, size + len(data))

    def finish_request(self, conn, fs):
        if getattr(conn, "reads_heads", False) and not fs.cancelled():
            if fs.exception() is None and not fs.result():
                self.close_lingering(conn)
                return
            buffered = fs.exception() is None and conn.parser.unreader.buf.getvalue()
            if buffered and not head_ready(buffered, self.head_limit):
                # Pipelined: part of the next head came with the last request.
                conn.sock.setblocking(False)
                self.await_head(conn)
                return
        super().finish_request(conn, fs)

    def close_lingering(self, conn):
        """Send FIN now, and close once the client has closed too (or after CLOSE_LINGER)."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            self.drop(conn)
            return
        conn.drained = 0
        conn.deadline = deadline = time.monotonic() + CLOSE_LINGER
        self.closing.append((deadline, conn))
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_closing, conn))

    def on_closing(self, conn, _sock):
        try:
            data = conn.sock.recv(HEAD_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.drained += len(data)
        if not data or conn.drained >= CLOSE_DRAIN:
            conn.deadline = None
            self.drop(conn)

    def drop(self, conn):
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        for waiting in (self.awaiting_head, self.closing):
            while waiting and waiting[0][0] <= now:
                deadline, conn = waiting.popleft()
                # Entries are not removed when the head arrives (that would be a linear scan):
                # an entry counts only while its deadline is still the connection's.
                if conn.deadline == deadline:
                    conn.deadline = None
                    self.drop(conn)

    # --- pool threads ---

    def handle(self, conn):
        keepalive = super().handle(conn)
        while keepalive is True and self.alive and not conn.is_http2:
            ready = self.next_request(conn)
            if not ready:
                return keepalive if ready is False else False
            keepalive = super().handle(conn)
        return keepalive

    def next_request(self, conn) -> bool | None:
        """Whether the client's next request head is here (read ahead with the previous
        request, or sent within LINGER); None when the client closed. A head that is still
        incomplete goes back to the main loop with the connection."""
        unreader = conn.parser.unreader
        buffered = unreader.buf.getvalue()
        if buffered:
            return head_ready(buffered, self.head_limit)
        if LINGER <= 0 or not getattr(conn, "reads_heads", False):
            return False
        try:
            if not readable(conn.sock, LINGER):
                return False
            data = conn.sock.recv(HEAD_READ, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except (OSError, ValueError):  # closed under us
            return None
        if not data:
            return None
        unreader.buf.write(data)
        return head_ready(data, self.head_limit)

    def handle_request(self, req, conn):
        unreader = conn.parser.unreader
        if type(unreader) is BoundedUnreader:
            unreader.begin()
            reader = req.body.reader
            if (
                type(reader) is LengthReader
                and 0 < reader.length <= BODY_BUFFER
                and not req._expected_100_continue  # the client waits for our 100 first
                and not unreader.fill(reader.length)
            ):
                self.log.info("Request body from %s did not arrive in time", conn.client)
                with contextlib.suppress(OSError):
                    conn.sock.sendall(TIMEOUT_RESPONSE)
                return False
        return super().handle_request(req, conn)


def closing_on_request(app):
    """`app`, with CLOSE_CONNECTION in the environ turned into gunicorn closing the connection
    (it drops an application's own `Connection: close` as a hop-by-hop header)."""

    def wrapped(environ, start_response):
        def start(status, headers, exc_info=None):
            if environ.get(CLOSE_CONNECTION):
                response = getattr(start_response, "__self__", None)  # gunicorn's Response
                if hasattr(response, "force_close"):
                    response.force_close()
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return wrapped
