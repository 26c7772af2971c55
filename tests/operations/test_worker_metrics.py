"""A real Celery worker (prefork, two pool processes) serves its task metrics on
KT_CELERY_METRICS_PORT, every pool process summed."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from tests.ports import free_port

CELERY = str(Path(sys.executable).parent / "celery")
TASK = "observability.refresh_gauges"

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path):
    db = connection.settings_dict
    port = free_port()
    multiproc = tmp_path / "metrics"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"left by a previous run")
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [
            CELERY,
            *("-A", "portal", "worker", "--pool=prefork", "--concurrency=2", "-l", "info"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        env={
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "DB_POOL_MAX": "2",
            "KT_CELERY_METRICS_PORT": str(port),
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=settings.BASE_DIR,
    )
    proc.metrics_url = f"http://127.0.0.1:{port}/metrics"
    proc.multiproc = multiproc
    proc.log_path = tmp_path / "worker.log"
    yield proc
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _runs(url: str) -> float:
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return -1
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "kt_celery_task_runs_total"
        and s.labels == {"task": TASK, "outcome": "success"}
    )


def test_the_worker_serves_the_task_runs_of_all_its_pool_processes(worker):
    from observability.tasks import refresh_gauges_task

    for _ in range(6):
        refresh_gauges_task.delay()
    deadline = time.monotonic() + 90
    while _runs(worker.metrics_url) < 6:
        assert time.monotonic() < deadline, worker.log_path.read_text()[-3000:]
        time.sleep(0.3)
    assert _runs(worker.metrics_url) == 6
    assert not (worker.multiproc / "counter_999999.db").exists(), "emptied when the worker started"
