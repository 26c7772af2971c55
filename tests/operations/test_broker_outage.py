"""Redis, the broker, goes away for 30 s under a real `celery worker` and `celery beat`.

The worker runs as in production (prefork, two processes, acks_late, prefetch 1, gossip, mingle
and heartbeats on) and holds unacknowledged work when Redis stops: tasks with a countdown, which
the worker keeps until they are due, as it keeps every `budgets.check_spend` the gateway enqueues,
while it waits for more work.
Redis keeps its data across the restart in an append-only file, as docker-compose runs it; a
Redis without persistence loses its queue when it restarts, and no worker setting brings it back.

Celery 5.7.0 / kombu 5.7.0 exited here with `Unrecoverable error: AttributeError("'NoneType'
object has no attribute 'hostname'")` (celery's consumer closes the lost connection a second
time, and kombu then tries to hand the held messages back through a connection it has already
cleared); docs/reliability.md section 5.
"""

import os
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from kombu import Connection

from portal.celery import app
from tests.factories import DepartmentFactory, OrganizationFactory
from tests.gateway.conftest import fund
from tests.private_redis import PrivateRedis
from wallets.models import Hold
from wallets.services import hold_place

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
OUTAGE_SECONDS = 30
HELD = 12  # due 8-13 s after they are sent: the worker holds them, unacknowledged
BURST = 12  # run at once, before the outage
VISIBILITY_TIMEOUT = 20  # longer than any countdown here; production keeps 3600


def _wait_for(predicate, *, timeout: float, what: str, processes=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for process in processes:
            assert process.poll() is None, f"{process.args[3]} exited while waiting for {what}"
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _database_url() -> str:
    db = connection.settings_dict  # the test database pytest-django created
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Celery:
    """A worker and a beat on the private Redis; their logs are printed when the test ends."""

    def __init__(self, broker: PrivateRedis, directory: Path):
        self.broker = broker
        self.directory = directory
        self.env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "REDIS_URL": broker.url(),
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "KT_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "KT_HOLD_SWEEP_SECONDS": "2",
            "DB_POOL_MAX": "2",
            "PYTHONPATH": str(ROOT),
        }
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, kind: str, *args: str) -> subprocess.Popen:
        log = (self.directory / f"{kind}.log").open("w")
        self.processes[kind] = subprocess.Popen(
            [CELERY, "-A", "portal", kind, "-l", "info", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self.processes[kind]

    def log(self, kind: str) -> str:
        return (self.directory / f"{kind}.log").read_text()

    def stop(self):
        for kind, process in self.processes.items():
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            print(f"--- {kind} log (end) ---\n{self.log(kind)[-6000:]}")


@pytest.fixture
def celery(tmp_path):
    broker = PrivateRedis(tmp_path / "redis", persistent=True).start()
    processes = Celery(broker, tmp_path)
    yield processes
    processes.stop()
    broker.stop()


def _done(directory: Path) -> dict[int, int]:
    """How many times each task index ran."""
    runs: dict[int, int] = {}
    for path in directory.iterdir():
        index = int(path.name.split(".", 1)[0])
        runs[index] = runs.get(index, 0) + 1
    return runs


def _expired_hold(wallet) -> Hold:
    hold = hold_place(
        wallet=wallet, amount=Decimal("0.50"), request_id=f"req_outage_{time.monotonic_ns()}"
    )
    Hold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return hold


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_survives_a_30_second_broker_outage_and_runs_what_was_queued(celery, tmp_path):
    org = OrganizationFactory(slug="acme")
    wallet = fund(DepartmentFactory(organization=org, team_id="team_engineering"), "10.00")
    outsider = OrganizationFactory(slug="outsider")
    outsider_wallet = fund(DepartmentFactory(organization=outsider), "5.00")

    worker = celery.start(
        "worker",
        *("-I", "tests.operations.outage_tasks", "--pool=prefork", "--concurrency=2"),
        *("-n", f"outage-{os.getpid()}@localhost"),
    )
    beat = celery.start("beat", "-s", str(tmp_path / "beat-schedule"))
    _wait_for(lambda: " ready." in celery.log("worker"), timeout=60, what="the worker")
    # Beat runs the hold sweeper every 2 s here (KT_HOLD_SWEEP_SECONDS).
    before = _expired_hold(wallet)
    _wait_for(
        lambda: Hold.objects.get(pk=before.pk).status == Hold.Status.EXPIRED,
        timeout=30,
        what="the sweeper before the outage",
        processes=(worker, beat),
    )

    done = tmp_path / "done"
    done.mkdir()
    with Connection(celery.broker.url()) as broker_connection:
        for index in range(HELD):
            app.send_task(
                "tests.outage.record",
                args=[str(done), index],
                countdown=8 + index % 6,
                connection=broker_connection,
            )
        for index in range(HELD, HELD + BURST):
            app.send_task(
                "tests.outage.record", args=[str(done), index], connection=broker_connection
            )
    # The burst has run: the worker waits for more, holding the tasks that are not due yet.
    _wait_for(
        lambda: set(_done(done)) == set(range(HELD, HELD + BURST)),
        timeout=30,
        what="the burst",
        processes=[worker],
    )

    celery.broker.stop()
    outage_started = time.monotonic()
    assert set(_done(done)) == set(range(HELD, HELD + BURST)), "a held task ran before the outage"
    while time.monotonic() - outage_started < OUTAGE_SECONDS:
        assert worker.poll() is None, (
            "the worker exited during the outage:\n" + celery.log("worker")[-3000:]
        )
        assert beat.poll() is None, "beat exited during the outage"
        time.sleep(0.5)
    celery.broker.start()

    # What the worker held comes back once the visibility timeout has passed.
    _wait_for(
        lambda: set(_done(done)) == set(range(HELD + BURST)),
        timeout=60,
        what="every queued task",
        processes=(worker, beat),
    )

    # Beat's schedule resumed: a hold that expires now is swept; one still due (another
    # tenant's) is left pending.
    after = _expired_hold(wallet)
    untouched = hold_place(wallet=outsider_wallet, amount=Decimal("0.50"), request_id="req_other")
    _wait_for(
        lambda: Hold.objects.get(pk=after.pk).status == Hold.Status.EXPIRED,
        timeout=30,
        what="the sweeper after the outage",
        processes=(worker, beat),
    )
    assert Hold.objects.get(pk=untouched.pk).status == Hold.Status.PENDING
    assert worker.poll() is None
    assert beat.poll() is None
    assert "Unrecoverable error" not in celery.log("worker")
