"""One end-to-end run through Redis and a real `celery worker` process."""

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from reports.exports.services import export_job_create
from reports.models import ExportJob
from tests.exports.usage import fund, record_usage

CELERY = str(Path(sys.executable).parent / "celery")


@pytest.fixture
def worker(media_root, tmp_path):
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "MEDIA_ROOT": str(media_root),
        "DB_POOL_MAX": "2",
    }
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [
            CELERY,
            *("-A", "portal", "worker", "--pool=solo", "-l", "info"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=settings.BASE_DIR,
    )
    yield proc
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_builds_the_export_from_the_redis_queue(
    org, engineering, model, worker, tmp_path, outsider_with_usage
):
    from portal.celery import app

    assert not app.conf.task_always_eager
    assert settings.REDIS_URL
    fund(engineering)
    ours = {
        record_usage(
            department=engineering, at=datetime(2026, 5, day, 8, tzinfo=UTC), model=model
        ).request_id
        for day in (2, 9, 30)
    }

    job = export_job_create(
        organization=org,
        type="events",
        format="jsonl",
        date_from="2026-05-01",
        date_to="2026-05-31",
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in (ExportJob.Status.COMPLETED, ExportJob.Status.FAILED):
            break
        time.sleep(0.3)
    log = (tmp_path / "worker.log").read_text()
    assert job.status == ExportJob.Status.COMPLETED, (job.status, job.error, log[-3000:])
    assert job.rows_written == job.rows_expected == 3
    assert "reports.export_job_run" in log
    assert job.file.storage.exists(job.file.name)
    with job.file.open("rb") as fh:
        lines = fh.read().splitlines()
    # The outsider's May event (its team_engineering, 10 May) is in the same table: not here.
    assert {json.loads(line)["request_id"] for line in lines} == ours
