"""A real gunicorn with the project's settings (portal/gunicorn_conf.py) on the echo app."""

import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def serve():
    """start(linger_ms=5, threads=4, workers=1, limit_files=None, **env) -> port; the server
    is stopped after the test. `env` sets more of the worker's environment (WEB_...);
    `limit_files` caps its open files. `start.log(port)` is what gunicorn logged so far."""
    procs = []
    logs = {}

    def start(
        linger_ms: int = 5,
        threads: int = 4,
        workers: int = 1,
        limit_files: int | None = None,
        **extra: str,
    ) -> int:
        port = free_port()
        env = {
            **os.environ,
            "KT_HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_WORKERS": str(workers),
            "WEB_THREADS": str(threads),
            "WEB_KEEPALIVE_LINGER_MS": str(linger_ms),
            **extra,
        }

        def limits():
            if limit_files:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit_files, limit_files))

        log = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log")  # noqa: SIM115
        logs[port] = log
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "portal/gunicorn_conf.py",
                "tests.serving.echo_app:app",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=limits,
        )
        procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                assert proc.poll() is None, Path(log.name).read_text()
                time.sleep(0.05)
        raise AssertionError("gunicorn did not start")

    start.log = lambda port: Path(logs[port].name).read_text()
    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)
    for log in logs.values():
        log.close()
