"""A task only the broker-outage test loads into its worker (`celery worker -I`): it leaves one
file per run, so the test can count which of the queued tasks ran and how often."""

import os
import time
import uuid
from pathlib import Path

from celery import shared_task


@shared_task(name="tests.outage.record", ignore_result=True)
def record(directory: str, index: int, seconds: float = 0.0) -> None:
    time.sleep(seconds)  # holds its message unacknowledged (acks_late) meanwhile
    Path(directory, f"{index}.{os.getpid()}.{uuid.uuid4().hex}").touch()
