"""gunicorn's gthread worker, keeping a busy keep-alive connection on the thread that served it.

Stock gthread hands every request twice between threads: the main loop polls the kept-alive
socket and submits it to the pool, and when the response is written the thread passes the
connection back to the main loop to be polled again. For a client that sends its next request
as soon as it has the answer (an SDK in a loop, a batch job, a load test) those hand-offs and
the main loop's bookkeeping cost a fifth to a third of the gateway's CPU per request and two
thread wake-ups of latency (docs/performance.md). Here the thread that answered waits a few
milliseconds for the same client's next request and serves it itself; a connection that stays
quiet longer goes back to the main loop exactly as before, so idle clients cost no thread.

It also closes the connection when the application asks (CLOSE_CONNECTION): the gateway does
when it answered before reading the request's body (gateway/middleware.py), whose bytes must
not be parsed as the next request.
"""

import os
import select

from gunicorn.workers.gthread import ThreadWorker

# How long a thread waits for a kept-alive client's next request before handing the connection
# back to the main loop (seconds).
LINGER = float(os.environ.get("WEB_KEEPALIVE_LINGER_MS", "5")) / 1000


class GatewayThreadWorker(ThreadWorker):
    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = closing_on_request(self.wsgi)

    def handle(self, conn):
        keepalive = super().handle(conn)
        while keepalive is True and self.alive and not conn.is_http2 and _next_request(conn):
            keepalive = super().handle(conn)
        return keepalive


def _next_request(conn) -> bool:
    """Whether the client's next request is here, or arrives within LINGER."""
    if conn.parser.unreader.buf.getvalue():  # read ahead with the previous request
        return True
    if LINGER <= 0:
        return False
    poller = select.poll()  # not select.select: sockets may be numbered above FD_SETSIZE
    try:
        poller.register(conn.sock, select.POLLIN)
        return bool(poller.poll(LINGER * 1000))
    except (OSError, ValueError):  # closed under us: the main loop's path handles it
        return False


# Set in the WSGI environ (Django's request.META) by an application that needs the connection
# closed after its reply; see gateway/middleware.py.
CLOSE_CONNECTION = "kt.close_connection"


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
