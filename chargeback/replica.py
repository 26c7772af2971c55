"""Reads that may be answered by a read replica (docs/operations.md "Scaling out").

Reports, dashboards, the spend API and export job runs wrap their reads in `replica_reads()`;
`portal.db_router.ReplicaRouter` then sends those reads to the `replica` database when
`DATABASE_REPLICA_URL` configured one. Everything else (the gateway, wallet writes, anything
that reads then writes money) never enters the block and stays on `default`. The flag is a
context variable, so one thread's or one task's report never moves another's reads.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"

_reporting: ContextVar[bool] = ContextVar("kt_replica_reads", default=False)

LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN NULL
    WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
    -- Nothing replayed since the standby started: behind since then at least.
    ELSE EXTRACT(EPOCH FROM clock_timestamp()
                 - COALESCE(pg_last_xact_replay_timestamp(), pg_postmaster_start_time()))
END
"""


def replica_configured() -> bool:
    return REPLICA in connections.settings


def read_alias() -> str:
    """Where a read made right now goes: the replica inside `replica_reads()` when there is one,
    unless the default connection is inside a transaction (its reads must see its own writes)."""
    if (
        _reporting.get()
        and replica_configured()
        and not connections[DEFAULT_DB_ALIAS].in_atomic_block
    ):
        return REPLICA
    return DEFAULT_DB_ALIAS


@contextmanager
def replica_reads():
    token = _reporting.set(True)
    try:
        yield
    finally:
        _reporting.reset(token)


def reads_from_replica(view):
    """Decorator for report views: their reads may come from the replica."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        with replica_reads():
            return view(*args, **kwargs)

    return wrapped


def replica_lag_seconds() -> float | None:
    """How far the replica's replay is behind (0 when it has replayed all it received); None
    without a replica or when the database there is not a standby."""
    if not replica_configured():
        return None
    with connections[REPLICA].cursor() as cursor:
        cursor.execute(LAG_SQL)
        lag = cursor.fetchone()[0]
    return None if lag is None else max(0.0, float(lag))


def replica_lag_notice() -> float | None:
    """The lag a report page states: only when its reads came from the replica and the lag is
    above KT_REPLICA_LAG_NOTICE_SECONDS."""
    if read_alias() != REPLICA:
        return None
    lag = replica_lag_seconds()
    if lag is None or lag <= settings.KT_REPLICA_LAG_NOTICE_SECONDS:
        return None
    return round(lag, 1)
