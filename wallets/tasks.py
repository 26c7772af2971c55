"""Celery tasks of the wallets app (autodiscovered): the cost ticket e-mail and the daily
retention of resolved holds."""

from celery import shared_task

from wallets.retention import holds_prune
from wallets.tickets.notify import ticket_opened_notify

__all__ = ["prune_resolved_holds", "ticket_opened_notify"]


@shared_task(name="wallets.prune_resolved_holds")
def prune_resolved_holds() -> int:
    """Beat task (daily): see `holds_prune`. Returns the holds deleted."""
    return holds_prune().deleted
