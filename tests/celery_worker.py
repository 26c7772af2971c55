"""A real Celery worker process on the tests' Redis and test database, for the tests whose
behaviour is about the worker (retries, backoff, outages)."""

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_database_url() -> str:
    db = connection.settings_dict  # the test database pytest-django created
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


@contextlib.contextmanager
def celery_worker(eager_celery, *, name: str, env: dict):
    """Run a worker (solo pool, Redis broker, Redis flushed first) with `env` on top of the
    test database's; tasks are sent to it, not run eagerly, until the block ends. Its log is
    printed when it stops."""
    assert settings.REDIS_URL, "this test needs REDIS_URL (a Redis db of its own)"
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # no leftovers from an earlier run
    eager_celery.CELERY_TASK_ALWAYS_EAGER = False
    environment = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        **env,
    }
    log = tempfile.NamedTemporaryFile(prefix=f"{name}-worker-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("celery")),
            *("-A", "portal", "worker", "--pool=solo", "-l", "info"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            *("-n", f"{name}-test-{os.getpid()}@localhost"),
        ],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
        print(Path(log.name).read_text()[-4000:])
        os.unlink(log.name)
