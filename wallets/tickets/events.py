"""What becomes of cost tickets, announced to the apps above without importing them.

Each registered listener gets (event, ticket) once the change has committed: `opened`,
`approved`, `denied`, `expired`, `redeemed`, `cancelled`. The metrics count them
(observability/) and the alert channels tell Slack and webhooks (alert_channels/ticket_events.py).
A change rolled back announces nothing. `opened` comes from the gateway's refusal, in the
request's thread: listeners must be cheap (queue or enqueue, no query) and never fail the
caller; an exception is logged and the next listener runs.
"""

import logging
from collections.abc import Callable

from django.db import transaction

log = logging.getLogger(__name__)

OPENED, APPROVED, DENIED = "opened", "approved", "denied"
EXPIRED, REDEEMED, CANCELLED = "expired", "redeemed", "cancelled"

_listeners: list[Callable] = []


def on_ticket_event(listener: Callable) -> None:
    """Register `listener(event, ticket)` (once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


def ticket_event(event: str, ticket) -> None:
    """Announce `event` of `ticket` at the commit of the caller's transaction."""

    def announce():
        for listener in list(_listeners):
            try:
                listener(event, ticket)
            except Exception:
                log.exception("a cost-ticket listener failed (%s %s)", event, ticket.ticket_id)

    transaction.on_commit(announce)
