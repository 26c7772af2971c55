"""A redis-server of the test's own, on a free loopback port, that the test may stop and start
again (never the shared Redis, which other test runs use)."""

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.ports import free_port


class PrivateRedis:
    """`persistent=True` keeps the data across a stop and start in an append-only file, as the
    docker-compose deployment does (`--appendonly yes`); otherwise nothing touches the disk."""

    def __init__(self, directory: Path, *, persistent: bool = False):
        self.directory = directory
        self.persistent = persistent
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> "PrivateRedis":
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", str(self.directory)]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def stop(self) -> None:
        """Shut the server down (SIGTERM, as `docker compose stop` does) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
