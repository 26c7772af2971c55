"""Celery tasks of the gateway: thin, idempotent, calling one service each."""

from celery import shared_task

from gateway.outbox import outbox_replay
from gateway.partitions import partitions_ensure
from gateway.rollups import rollups_fold
from gateway.sweep import holds_sweep


@shared_task(name="gateway.tasks.sweep_expired_holds")
def sweep_expired_holds() -> int:
    """Beat task (every minute): see `holds_sweep`."""
    return holds_sweep()


@shared_task(name="gateway.tasks.replay_capture_outbox")
def replay_capture_outbox() -> int:
    """Beat task (every minute): replay the capture outbox (gateway/outbox.py) where this worker
    sees the gateway's outbox directory (the same host or volume); elsewhere it finds nothing.
    Returns the captures replayed."""
    return outbox_replay().replayed


@shared_task(name="gateway.tasks.fold_spend_rollups")
def fold_spend_rollups() -> int:
    """Beat task (every minute): fold the spend deltas into the daily rollups (gateway/rollups.py).
    Returns the daily rows written."""
    return rollups_fold()


@shared_task(name="gateway.tasks.ensure_event_partitions")
def ensure_event_partitions() -> int:
    """Beat task (daily): see `partitions_ensure`. Returns the partitions created."""
    return len(partitions_ensure().created)
