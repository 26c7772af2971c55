"""Gunicorn settings for the gateway and management API (one server, one port).

Threads, not async: LLM streams are long, and a thread blocked on the upstream socket costs only
memory; see docs/performance.md for the measurements behind the numbers.

A gthread worker runs each request on one of its `threads` for the whole response, so the
threads bound the open streams one instance holds: 2 x 512 held 500 concurrent 10-second
streams without errors here, 2 x 256 not always (a worker that accepted more than 256 queued
the rest for a whole stream) and 2 x 64 never. Idle threads cost memory only (about 270 MB RSS
for the instance at 500 streams); request throughput (json c=32) measured the same at 2 x 256
and 2 x 512 because only the requests in flight compete for the GIL. More workers than cores
(4 x 128) gave nothing but memory on 2 cores.
"""

import contextlib
import glob
import os
import tempfile

bind = f"{os.environ.get('KT_HOST', '0.0.0.0')}:{os.environ.get('PORT', '41002')}"  # noqa: S104
# gthread, with kept-alive clients that send at once served on the same thread
worker_class = "portal.gunicorn_worker.GatewayThreadWorker"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "512"))
# Connections a worker keeps: open streams, idle keep-alive clients and clients still sending
# their request head. Only requests being served hold a thread (the worker reads heads in its
# main loop), so this is well above threads: slow or idle clients never keep a stream out, and
# the limit is file descriptors (the worker lifts its soft limit to fit) and a few KB each.
worker_connections = int(os.environ.get("WEB_CONNECTIONS", str(max(4096, 4 * threads))))
keepalive = 75
# No worker timeout: a stream may last minutes and the gateway enforces its own upstream
# timeouts. What a client sends is bounded by the worker instead (WEB_HEADER_TIMEOUT,
# WEB_BODY_TIMEOUT, WEB_BODY_MIN_RATE: portal/gunicorn_io.py); what it reads is not.
timeout = 0
graceful_timeout = 30
accesslog = os.environ.get("ACCESS_LOG") or None
# gunicorn 27's runtime control socket sits at one path per user ($HOME/.gunicorn/gunicorn.ctl),
# shared by every instance on the host (the demo, tests, a second deployment); nothing here uses
# it, so it is off.
control_socket_disable = True

# Metrics (observability/exposition.py): each worker writes its counters to
# PROMETHEUS_MULTIPROC_DIR and a scrape sums them all. The directory is set here, before the
# workers start (prometheus-client picks its mode when first imported), emptied when the server
# starts, and an exited worker is marked dead. KT_METRICS_ENABLED=false leaves it all out.
if os.environ.get("KT_METRICS_ENABLED", "true").lower() not in ("false", "0", "no", "off"):
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR",
        os.path.join(tempfile.gettempdir(), f"kt-metrics-{bind.rsplit(':', 1)[-1]}"),
    )


def on_starting(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        _metrics_files_remove(path)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:  # the next start empties it anyway; leave nothing behind in the meantime
        _metrics_files_remove(path)
        with contextlib.suppress(OSError):
            os.rmdir(path)  # only if nothing else is in it


def _metrics_files_remove(path: str) -> None:
    # Only prometheus-client's own files: the directory may be one the operator chose.
    for name in glob.glob(os.path.join(path, "*.db")):
        with contextlib.suppress(OSError):
            os.remove(name)
