"""Capture (or release) a hold and write its usage event, in one transaction.

This is the single place where a gateway request's money moves after the provider answered, so
that a faster implementation (one PostgreSQL statement) can replace `usage_record` without
touching the request lifecycle. `event_fields` is a plain dict of UsageEvent field values.
"""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from chargeback.money import ZERO
from gateway.models import UsageEvent
from wallets import alerts
from wallets.models import Hold, Wallet
from wallets.services import hold_capture, hold_release


def _after_commit(event_fields: dict):
    org = event_fields["organization_id"]
    dept = event_fields.get("department_id")
    wallet = event_fields.get("wallet_id")
    transaction.on_commit(
        lambda: alerts.spend_recorded(organization_id=org, department_id=dept, wallet_id=wallet)
    )


def usage_record(hold, amount: Decimal, event_fields: dict) -> Decimal | None:
    """Charge `amount` against `hold` (capture, releasing the rest; a zero amount releases it all)
    and write the request's one UsageEvent, atomically. Returns the wallet's available funds
    after it (None without a wallet).

    Exactly once: the hold is resolved by a conditional update, so a second call (or a sweeper
    that expired the hold first) charges nothing; the event then records cost 0 with
    `error_code="hold_already_resolved"`, unless an event for the request already exists, in
    which case nothing is written. The event's cost always equals what was charged.
    """
    fields = dict(event_fields)
    with transaction.atomic():
        if hold is not None:
            if amount > ZERO:
                resolved = hold_capture(hold=hold, amount=amount, reference=hold.request_id)
            else:
                resolved = hold_release(hold=hold)
            if not resolved:
                fields["cost"] = ZERO
                fields["above_hold"] = False
                fields["error_code"] = fields.get("error_code") or "hold_already_resolved"
                if UsageEvent.objects.filter(request_id=fields["request_id"]).exists():
                    return None
        UsageEvent.objects.create(**fields)
        available = None
        if fields.get("wallet_id"):
            row = Wallet.objects.filter(pk=fields["wallet_id"]).values_list("balance", "held")
            balance, held = row.get()
            available = balance - held
        if hold is not None or fields.get("cost"):
            _after_commit(fields)
    return available


def hold_keepalive(hold) -> bool:
    """Push a pending hold's expiry KT_HOLD_TTL_SECONDS ahead while its stream is still running,
    so the sweeper never releases the hold of a long but live stream (which would let the
    stream go uncharged). False when the hold is no longer pending."""
    expires = timezone.now() + timedelta(seconds=settings.KT_HOLD_TTL_SECONDS)
    return bool(
        Hold.objects.filter(
            pk=hold.pk, request_id=hold.request_id, status=Hold.Status.PENDING
        ).update(expires_at=expires)
    )


def event_record(event_fields: dict) -> bool:
    """Write an event for a request that moved no money (refused before or without a hold).
    False when the request already has one."""
    try:
        with transaction.atomic():
            UsageEvent.objects.create(**event_fields)
    except IntegrityError:
        return False
    return True
