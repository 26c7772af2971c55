"""Gunicorn settings for the gateway and management API (one server, one port).

Threads, not async: LLM streams are long, and a thread blocked on the upstream socket costs only
memory; see docs/performance.md for the measurements behind the numbers.
"""

import os

bind = f"{os.environ.get('KT_HOST', '0.0.0.0')}:{os.environ.get('PORT', '41002')}"  # noqa: S104
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "256"))
keepalive = 75
timeout = 0  # a stream may last minutes; the gateway enforces its own upstream timeouts
graceful_timeout = 30
accesslog = os.environ.get("ACCESS_LOG") or None
