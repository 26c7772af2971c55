"""GET /metrics: the Prometheus text format, for a bearer token or an allowed address.

Under gunicorn every worker writes its counters to PROMETHEUS_MULTIPROC_DIR (set by
portal/gunicorn_conf.py, which empties it when the server starts and marks exited workers
dead); a scrape, whichever worker answers it, sums the files of all of them: what each worker
has applied of its queued updates (observability/recorder.py). Without the variable (runserver,
the tests' in-process server) the process's own registry is served.
"""

import hmac
import ipaddress
import logging
import os
from functools import cache
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    start_http_server,
)

from observability.gauges import SnapshotCollector
from observability.recorder import flush
from portal.security import client_ip

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiproc_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def multiproc_dir_reset() -> None:
    """Empty the multiprocess directory (a server starting: the files of the last run's
    processes would otherwise be summed in forever). Only prometheus-client's files go: the
    directory may be one the operator chose."""
    path = multiproc_dir()
    if path is None:
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    for name in Path(path).glob("*.db"):
        name.unlink(missing_ok=True)


def process_dead(pid: int) -> None:
    if multiproc_dir() is not None:
        multiprocess.mark_process_dead(pid)


@cache
def _single_process_registry():
    REGISTRY.register(SnapshotCollector())
    return REGISTRY


def registry():
    """What a scrape reads: every process's files plus the gauge snapshot, or this process."""
    if multiproc_dir() is None:
        return _single_process_registry()
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    collected.register(SnapshotCollector())
    return collected


def allowed(request) -> bool:
    token = settings.KT_METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, given = header.partition(" ")
    if token and scheme.lower() == "bearer":
        return hmac.compare_digest(given.strip().encode(), token.encode())
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    return any(address in network for network in _networks(tuple(settings.KT_METRICS_ALLOW_IPS)))


@cache
def _networks(entries: tuple) -> tuple:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def metrics_view(request):
    if not settings.KT_METRICS_ENABLED:
        return JsonResponse({"detail": "Metrics are off (KT_METRICS_ENABLED)."}, status=404)
    if not allowed(request):
        return JsonResponse(
            {"detail": "Not allowed: send the metrics token, or scrape from an allowed address."},
            status=403,
        )
    flush()  # this process's queued updates first; the other workers' threads flush their own
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def serve_worker_metrics(port: int) -> None:
    """A Celery worker's own /metrics on `port` (every interface; protect it by network)."""
    start_http_server(port, registry=registry())
    log.info("Celery worker metrics on port %s", port)
