"""The sweep of holds whose request died: their funds released and an `expired` event written
for each (the beat task in gateway/tasks.py calls it every minute)."""

from django.db.models import Exists, OuterRef

from gateway.models import UsageEvent
from gateway.recording import event_record
from wallets.models import Hold
from wallets.services import holds_expire
from wallets.tickets.services import tickets_expire

SWEEP_LIMIT = 1000


def holds_sweep(*, limit: int = SWEEP_LIMIT) -> int:
    """Release holds past their expiry (their request died between hold and capture, or its
    capture is still waiting in a gateway's outbox) and write an `expired` event for every
    expired hold whose request has none. Returns events written.

    Idempotent and self-healing: holds are expired exactly once by `holds_expire`, and events
    are written for any expired hold still without one, including those expired by an earlier
    run that stopped before writing them. What the request was for is unknown by then (model and
    provider stay blank); the event records the wallet, department and the released amount's
    request id, at cost 0.

    The sweep never makes an answered call free: the `expired` event is a placeholder. A capture
    that arrives after the sweep (an outbox replay, or a capture that finds its hold expired)
    charges the call's actual cost once and replaces the placeholder with the call's event
    (gateway/recording.py usage_settle). No grace period is needed for that; the TTL (15
    minutes) already outlasts the in-request retry by far.
    """
    holds_expire(limit=limit)
    tickets_expire(limit=limit)  # pending cost tickets past KT_COST_TICKET_HOURS
    orphans = (
        Hold.objects.filter(status=Hold.Status.EXPIRED)
        .filter(~Exists(UsageEvent.objects.filter(request_id=OuterRef("request_id"))))
        .select_related("wallet")
        .order_by("resolved_at")[:limit]
    )
    written = 0
    for hold in orphans:
        created = event_record(
            {
                "organization_id": hold.organization_id,
                # The caller's (recorded since the cascade: the wallet may be the
                # organization's); older holds: the wallet's.
                "department_id": hold.department_id or hold.wallet.department_id,
                "wallet_id": hold.wallet_id,
                "request_id": hold.request_id,
                "endpoint": "",
                "provider": "",
                "model_requested": "",
                "status": UsageEvent.Status.EXPIRED,
                "usage_source": UsageEvent.UsageSource.NONE,
                "http_status": 0,
                "error_code": "hold_expired",
                "created_at": hold.resolved_at or hold.expires_at,
            }
        )
        written += int(created)
    return written
