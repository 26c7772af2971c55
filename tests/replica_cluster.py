"""A real streaming replica on loopback for the read-replica tests.

The machine's PostgreSQL allows no replication connections (its pg_hba.conf has no
`replication` line, and the tests leave the machine's configuration alone), so the test makes
its own pair: a primary cluster in a temporary directory, given a copy of the test database
(pg_dump), and a hot standby of it made with pg_basebackup and streaming from it. PostgreSQL
refuses to run as root: when the tests do, the clusters run as the `postgres` OS user.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.ports import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(*args, input=None):
    subprocess.run(args, check=True, capture_output=True, input=input, timeout=120)


@dataclass
class Cluster:
    datadir: Path
    port: int

    def start(self, log: Path):
        _run(*_as_postgres(), str(BIN / "pg_ctl"), "-D", str(self.datadir), "-l", str(log), "-w",
             "-o", f"-p {self.port} -k {self.datadir.parent} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c shared_buffers=16MB -c max_connections=30",
             "start")  # fmt: skip

    def stop(self):
        subprocess.run(
            [*_as_postgres(), str(BIN / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate",
             "-w", "stop"], capture_output=True, timeout=60,
        )  # fmt: skip

    def connect(self, dbname: str) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True
        )


@dataclass
class ReplicaPair:
    primary: Cluster
    standby: Cluster
    dbname: str

    def scalar(self, cluster: Cluster, sql: str):
        with cluster.connect(self.dbname) as conn:
            return conn.execute(sql).fetchone()[0]

    def wait_caught_up(self, timeout: float = 30.0):
        """Until the standby has replayed everything the primary has written so far."""
        target = self.scalar(self.primary, "SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.scalar(
                self.standby, f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
            )
            if done:
                return
            time.sleep(0.05)
        raise AssertionError(f"the standby did not replay up to {target} in {timeout} s")

    def wait_received(self, timeout: float = 30.0):
        """Until the standby has received (not necessarily replayed) the primary's WAL so far."""
        target = self.scalar(self.primary, "SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.scalar(self.standby, f"SELECT pg_last_wal_receive_lsn() >= '{target}'"):
                return
            time.sleep(0.05)
        raise AssertionError("the standby did not receive the primary's WAL")

    def pause_replay(self):
        self.scalar(self.standby, "SELECT pg_wal_replay_pause()::text")

    def resume_replay(self):
        self.scalar(self.standby, "SELECT pg_wal_replay_resume()::text")


def start_pair(*, source: dict) -> tuple[ReplicaPair, callable]:
    """Primary with a copy of `source` (a Django settings dict) and a streaming standby of it;
    returns the pair and the function that stops and removes both."""
    root = Path(tempfile.mkdtemp(prefix="kt-replica-"))
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
    primary = Cluster(root / "primary", free_port())
    standby = Cluster(root / "standby", free_port())

    def stop():
        standby.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)

    try:
        # initdb's trust also allows replication connections from loopback.
        _run(*_as_postgres(), str(BIN / "initdb"), "-D", str(primary.datadir), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")  # fmt: skip
        primary.start(root / "primary.log")
        dbname = source["NAME"]
        _run(str(BIN / "createdb"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
             dbname)  # fmt: skip
        dump = subprocess.run(
            [str(BIN / "pg_dump"), "-h", source.get("HOST") or "127.0.0.1",
             "-p", str(source.get("PORT") or 5432), "-U", source.get("USER") or "postgres",
             "--no-owner", dbname],
            check=True, capture_output=True, timeout=120,
            env={**os.environ, "PGPASSWORD": source.get("PASSWORD") or ""},
        ).stdout  # fmt: skip
        _run(str(BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(primary.port), "-U", "postgres", "-d", dbname, input=dump)  # fmt: skip
        _run(*_as_postgres(), str(BIN / "pg_basebackup"), "-h", "127.0.0.1",
             "-p", str(primary.port), "-U", "postgres", "-D", str(standby.datadir),
             "-R", "-X", "stream", "-c", "fast", "--no-sync")  # fmt: skip
        standby.start(root / "standby.log")
    except BaseException:
        stop()
        raise
    return ReplicaPair(primary=primary, standby=standby, dbname=dbname), stop
