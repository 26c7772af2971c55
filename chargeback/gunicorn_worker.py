"""gunicorn's gthread worker, keeping a busy keep-alive connection on the thread that served it.

Stock gthread hands every request twice between threads: the main loop polls the kept-alive
socket and submits it to the pool, and when the response is written the thread passes the
connection back to the main loop to be polled again. For a client that sends its next request
as soon as it has the answer (an SDK in a loop, a batch job, a load test) those hand-offs and
the main loop's bookkeeping cost a fifth to a third of the gateway's CPU per request and two
thread wake-ups of latency (docs/performance.md). Here the thread that answered waits a few
milliseconds for the same client's next request and serves it itself; a connection that stays
quiet longer goes back to the main loop exactly as before, so idle clients cost no thread.
"""

import os
import select

from gunicorn.workers.gthread import ThreadWorker

# How long a thread waits for a kept-alive client's next request before handing the connection
# back to the main loop (seconds).
LINGER = float(os.environ.get("WEB_KEEPALIVE_LINGER_MS", "5")) / 1000


class GatewayThreadWorker(ThreadWorker):
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
