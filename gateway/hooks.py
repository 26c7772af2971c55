"""What the gateway announces to the apps above it, without importing them.

"Spend recorded": after a call's capture has committed, each registered listener is called
with the organization, department and wallet it charged (the budgets app registers its alert
check from its AppConfig.ready). Listeners run in the request's thread once per charged call,
so they must be cheap (budgets only claim a window and enqueue a task), and they never fail the
call: an exception is logged and the next listener runs.
"""

import logging
import threading
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, connections, transaction

log = logging.getLogger(__name__)

_listeners: list[Callable] = []


def on_spend_recorded(listener: Callable) -> None:
    """Register `listener(organization_id=, department_id=, wallet_id=)` (once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


def spend_recorded(
    *, organization_id: int, department_id: int | None, wallet_id: int | None
) -> None:
    for listener in list(_listeners):
        try:
            listener(
                organization_id=organization_id, department_id=department_id, wallet_id=wallet_id
            )
        except Exception:
            log.exception("a spend-recorded listener failed (organization %s)", organization_id)


def funds_refused(*, organization_id: int, wallet_id: int) -> None:
    """A call was refused (402) because its wallet could not cover it: a reason to look at the
    wallet's state (a wallet emptied by a reclaim turns "depleted" with no charged call), so the
    listeners hear about the wallet alone, exactly as after a charge."""
    spend_recorded(organization_id=organization_id, department_id=None, wallet_id=wallet_id)


def spend_recorded_after_commit(event_fields: dict) -> None:
    """Announce the call of `event_fields` once its capture has committed: at the commit of the
    caller's transaction, or now when the statement committed by itself (outside one)."""
    organization_id = event_fields["organization_id"]
    department_id = event_fields.get("department_id")
    wallet_id = event_fields.get("wallet_id")

    def announce():
        spend_recorded(
            organization_id=organization_id, department_id=department_id, wallet_id=wallet_id
        )

    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        transaction.on_commit(announce)
    else:  # committed already; on_commit would open Django's connection only to learn that
        announce()


# "Call recorded": once per usage event a gateway call (or the hold sweeper) wrote, each listener
# gets the event's field values and what became of the call's hold ("captured", "released",
# "expired", or None without a hold). The metrics register here (observability/); same rules
# as above: cheap, in the request's thread, never failing the call.
_call_listeners: list[Callable] = []
_local = threading.local()


def on_call_recorded(listener: Callable) -> None:
    """Register `listener(event_fields, hold_outcome)` (once per listener)."""
    if listener not in _call_listeners:
        _call_listeners.append(listener)


def call_recorded(event_fields: dict, hold_outcome: str | None = None) -> None:
    for listener in list(_call_listeners):
        try:
            listener(event_fields, hold_outcome)
        except Exception:
            log.exception(
                "a call-recorded listener failed (request %s)", event_fields.get("request_id")
            )


def upstream_answered(seconds: float) -> None:
    """The provider's reply headers came `seconds` after the request was sent (this thread's
    call; a listener of call_recorded takes it with upstream_seconds_take)."""
    _local.upstream_seconds = seconds


def upstream_seconds_take() -> float | None:
    seconds = getattr(_local, "upstream_seconds", None)
    _local.upstream_seconds = None
    return seconds
