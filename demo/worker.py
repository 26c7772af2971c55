"""The embedded default's Celery worker: `demo_run` starts it beside gunicorn and stops it with
itself, so `make run` runs the production schedule (hold sweeper, hourly budget evaluation,
month-end exports, ...) and alert timing (a check runs after its window, `countdown`) on SQLite
without Redis. The broker is kombu's filesystem transport in a directory of the run's own
(portal/settings_embedded.py); the worker runs beat too (`-B`) with its schedule file there."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

BROKER_ENV = "KT_EMBEDDED_BROKER_DIR"


def broker_prepare(broker_dir: Path) -> dict:
    """Create the broker's folders; the environment that points a process at them."""
    for folder in ("queue", "control"):
        (broker_dir / folder).mkdir(parents=True, exist_ok=True)
    return {BROKER_ENV: str(broker_dir), "CELERY_BROKER_URL": "filesystem://"}


def worker_command(broker_dir: Path, *, name: str = "embedded", loglevel: str = "warning"):
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "portal",
        "worker",
        "-B",  # beat in the same process: one child for the whole schedule
        "-s",
        str(broker_dir / "beat-schedule"),
        "--pool=solo",
        # The filesystem transport has no broadcast worth the polling: no gossip, no mingle.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"{name}-{os.getpid()}@localhost",
        "-l",
        loglevel,
    ]


def start_embedded_worker(
    broker_dir: Path, *, env: dict | None = None, stdout=None, loglevel: str = "warning"
) -> subprocess.Popen:
    """The worker (with beat) on the filesystem broker in `broker_dir`; the caller stops it."""
    environment = {**(env if env is not None else os.environ), **broker_prepare(broker_dir)}
    return subprocess.Popen(  # noqa: S603 - our own interpreter and celery
        worker_command(broker_dir, loglevel=loglevel),
        cwd=settings.BASE_DIR,
        env=environment,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
    )


def publish(broker_dir: Path, task_name: str) -> None:
    """Queue `task_name` for the worker on `broker_dir` from a process whose own Celery is not
    configured for that broker (demo_run itself runs eagerly)."""
    import warnings

    from kombu import Connection

    from portal.celery import app
    from portal.settings_embedded import embedded_celery

    conf = embedded_celery(str(broker_dir))
    with (
        Connection(
            conf["CELERY_BROKER_URL"],
            transport=conf["CELERY_BROKER_TRANSPORT"],
            transport_options=conf["CELERY_BROKER_TRANSPORT_OPTIONS"],
        ) as connection,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # "always eager ignored": sending is the point here
        app.send_task(task_name, connection=connection)
