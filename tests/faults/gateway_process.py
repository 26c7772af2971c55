"""The gateway as production runs it, for the fault tests and bench/faults: gunicorn with
portal/gunicorn_conf.py (the project's worker class), in its own process group, with the
environment the caller gives (typically a DATABASE_URL that points at a tests.faults.tcp_proxy).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gunicorn.config
import httpx

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


class GatewayProcess:
    def __init__(self, env: dict, *, repo: Path = ROOT, workers: int = 1, threads: int = 64):
        self.port = free_port()
        self.repo = Path(repo)
        self.log_path = None
        base = {k: v for k, v in os.environ.items() if not k.startswith(("KT_", "WEB_"))}
        base.pop("REDIS_URL", None)  # no broker nobody reads: Celery runs eagerly in the server
        self.env = {
            **base,
            "KT_HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_WORKERS": str(workers),
            "WEB_THREADS": str(threads),
            "DEBUG": "false",
            "PYTHONPATH": str(self.repo),
            **env,
        }
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_path: Path, timeout: float = 60) -> "GatewayProcess":
        self.log_path = log_path
        log = open(log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
        options = ["-c", "portal/gunicorn_conf.py", "--chdir", str(self.repo)]
        if hasattr(gunicorn.config, "ControlSocket"):
            options.append("--no-control-socket")  # one default path for every instance
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *options, "portal.wsgi:application"],
            cwd=self.repo,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends it and its workers
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60):
        """Until a worker answers (401 without a key needs no database)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 401:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"gunicorn did not start:\n{self.log()}")

    def workers(self) -> list[int]:
        """The worker processes' pids (children of the master)."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        return [int(pid) for pid in out.stdout.split()]

    def kill_workers(self) -> list[int]:
        """kill -9 every worker (the master starts new ones); their pids."""
        pids = self.workers()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=35)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
