"""Celery tasks of the gateway: thin, idempotent, calling one service each."""

from celery import shared_task

from gateway.outbox import outbox_replay
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
