"""prometheus-client's multiprocess values, without a getpid() system call per update.

In multiprocess mode every update of a metric calls os.getpid() to notice a fork; on this
platform that system call costs about 3.7 us, more than the rest of the update. The process id
is kept here instead and renewed in the child of every os.fork() (gunicorn's and Celery's
prefork workers fork through it), so it still differs between processes running at once, the
one rule prometheus-client sets for a process identifier. Installed by observability/__init__.py,
before any metric of this package is defined (a value created with the library's own class would
open the same file a second time).
"""

import os

from prometheus_client import values

_pid = [os.getpid()]


def _forked() -> None:
    _pid[0] = os.getpid()


def current() -> int:
    return _pid[0]


def install() -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and values.ValueClass is not values.MutexValue:
        values.ValueClass = values.MultiProcessValue(process_identifier=current)


os.register_at_fork(after_in_child=_forked)
