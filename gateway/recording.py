"""Capture (or release) a hold and write its usage event, in one transaction.

This is the single place where a gateway request's money moves after the provider answered, so
that a faster implementation (one PostgreSQL statement) can replace `usage_record` without
touching the request lifecycle. `event_fields` is a plain dict of UsageEvent field values.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import psycopg
from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.utils import timezone

from chargeback.money import ZERO, quantize
from gateway.hooks import call_recorded, spend_recorded_after_commit
from gateway.models import UsageEvent
from wallets.models import Hold, Wallet
from wallets.services import hold_capture, hold_capture_late, hold_release

log = logging.getLogger(__name__)

# The database is unreachable or the connection broke (PostgreSQL restarting, a network cut, no
# pooled connection in time): the write did not happen, or its outcome is unknown. Django wraps
# the driver's errors; psycopg's own are listed for code that runs outside that wrapper.
DATABASE_UNAVAILABLE = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


def usage_record(hold, amount: Decimal, event_fields: dict) -> Decimal | None:
    """Charge `amount` against `hold` (capture, releasing the rest; a zero amount releases it all)
    and write the request's one UsageEvent, atomically. Returns the wallet's available funds
    after it (None without a wallet).

    Exactly once: the hold is resolved by a conditional update, so a second call charges
    nothing; the event then records cost 0 with `error_code="hold_already_resolved"`, unless an
    event for the request already exists, in which case nothing is written (None). A hold the
    sweeper expired first is captured late, once (usage_settle). The event's cost always equals
    what was charged.
    """
    fields = dict(event_fields)
    with transaction.atomic():
        if hold is not None:
            if amount > ZERO:
                resolved = hold_capture(hold=hold, amount=amount, reference=hold.request_id)
            else:
                resolved = hold_release(hold=hold)
            if not resolved:  # expired (a late capture), or resolved before: usage_settle
                return usage_settle(hold, amount, event_fields).available
        UsageEvent.objects.create(**fields)
        available = None
        if fields.get("wallet_id"):
            row = Wallet.objects.filter(pk=fields["wallet_id"]).values_list("balance", "held")
            balance, held = row.get()
            available = balance - held
        if hold is not None or fields.get("cost"):
            spend_recorded_after_commit(fields)
    return available


@dataclass(frozen=True)
class Settled:
    """What usage_settle did. `outcome`: "captured" (the hold was pending: captured or released
    now), "late" (the hold had expired: charged late, the call's event replacing the $0 one),
    "resolved_before" (the hold was captured or released before, or is not this request's:
    nothing charged, a $0 event written because the request had none), "recorded" (no hold: the
    event written), "nothing" (all of it had been written before: this call wrote nothing).
    `available`: the wallet's balance minus held after it; None without a wallet or when
    nothing was written."""

    outcome: str
    available: Decimal | None


def usage_settle(hold, amount: Decimal, event_fields: dict) -> Settled:
    """Charge an answered call whatever happened to its capture before: the capture of a retry,
    of an outbox replay (gateway/outbox.py), or of a capture that found its hold expired. One
    transaction, exactly once however often it runs, including after an attempt whose commit
    outcome was lost.

    The hold row is locked first (`SELECT ... FOR UPDATE`, by id and request id; every other
    writer of a hold locks it too), then, by its status:
    - pending: the normal capture (hold_capture; hold_release for a zero amount) and the event;
    - expired (the sweeper released it: the database was away longer than the hold's TTL, or
      this is a replay after the sweep): hold_capture_late charges the actual cost once (a new
      ledger entry; nothing is reversed), and the call's event replaces the $0 event already
      written for the request (the sweeper's `expired` placeholder, or the $0
      `hold_already_resolved` event a capture wrote when it found the hold expired): one event,
      with the status and cost of the answered call;
    - captured or released: done before (this very capture, whose commit outcome was lost):
      nothing is charged; the event records cost 0 with `error_code="hold_already_resolved"`
      only if the request has none, as usage_record does;
    - no such hold (not this request's: its row was lost with an unflushed transaction and the
      id reissued): as captured, nothing charged.
    Without a hold the event is written unless the request has one. An event replaced is one
    that moved no money (cost 0); the event's cost always equals what was charged.
    """
    fields = dict(event_fields)
    fields.setdefault("created_at", timezone.now())  # a replacement is dated by the call
    amount = quantize(amount) if amount > ZERO else ZERO
    charged = False
    with transaction.atomic():
        if hold is None:
            outcome = "recorded" if _event_put(fields) else "nothing"
            charged = outcome == "recorded" and bool(fields.get("cost"))
        else:
            row = (
                Hold.objects.select_for_update()
                .filter(pk=hold.pk, request_id=hold.request_id)
                .first()
            )
            status = row.status if row is not None else None
            if status == Hold.Status.PENDING:
                if amount > ZERO:
                    hold_capture(hold=row, amount=amount, reference=row.request_id)
                else:
                    hold_release(hold=row)
                _event_put(fields, replace_zero_cost=True)
                outcome, charged = "captured", True
            elif status == Hold.Status.EXPIRED:
                hold_capture_late(hold=row, amount=amount)
                _event_put(fields, replace_zero_cost=True)
                outcome, charged = "late", amount > ZERO
            else:
                fields["cost"] = ZERO
                if fields.get("price_cost") is not None:
                    fields["price_cost"] = ZERO
                fields["above_hold"] = False
                fields["error_code"] = fields.get("error_code") or "hold_already_resolved"
                outcome = "resolved_before" if _event_put(fields) else "nothing"
        available = None
        if outcome != "nothing" and fields.get("wallet_id"):
            row = Wallet.objects.filter(pk=fields["wallet_id"]).values_list("balance", "held")
            balance, held = row.get()
            available = balance - held
        if charged or (hold is not None and outcome != "nothing"):
            spend_recorded_after_commit(fields)
    return Settled(outcome, available)


def _event_put(fields: dict, *, replace_zero_cost: bool = False) -> bool:
    """Insert the request's event; when it has one already, replace it only if asked and that
    one moved no money (cost 0). True when a row was written."""
    try:
        with transaction.atomic():  # a savepoint: a duplicate leaves the outer transaction usable
            UsageEvent.objects.create(**fields)
        return True
    except IntegrityError:
        if not replace_zero_cost:
            return False
    # The whole row is replaced: what the call did not set takes the field's default.
    updates = {
        f.attname: fields.get(f.attname, fields.get(f.name, f.get_default()))
        for f in UsageEvent._meta.concrete_fields
        if not f.primary_key and f.attname != "request_id"
    }
    return bool(
        UsageEvent.objects.filter(request_id=fields["request_id"], cost=ZERO).update(**updates)
    )


def hold_keepalive(hold) -> bool:
    """Push a pending hold's expiry KT_HOLD_TTL_SECONDS ahead while its stream is still running,
    so the sweeper never releases the hold of a long but live stream (which would let the
    stream go uncharged). False when the hold is no longer pending, or when the database is
    away: the stream goes on (its capture does not need the renewal; a hold that expires
    meanwhile is captured late)."""
    expires = timezone.now() + timedelta(seconds=settings.KT_HOLD_TTL_SECONDS)
    try:
        return bool(
            Hold.objects.filter(
                pk=hold.pk, request_id=hold.request_id, status=Hold.Status.PENDING
            ).update(expires_at=expires)
        )
    except DATABASE_UNAVAILABLE as exc:
        log.warning("request %s: hold renewal failed: %s", hold.request_id, exc)
        db = connections[DEFAULT_DB_ALIAS]
        if not db.in_atomic_block:
            db.close()  # a broken connection goes back to the pool, which drops it
        return False


def event_record(event_fields: dict, *, announce: bool = True) -> bool:
    """Write an event for a request that moved no money (refused before or without a hold).
    False when the request already has one. Announced (gateway/hooks.py call_recorded) unless
    the caller announces it itself."""
    try:
        with transaction.atomic():
            UsageEvent.objects.create(**event_fields)
    except IntegrityError:
        return False
    if announce:
        expired = event_fields.get("status") == UsageEvent.Status.EXPIRED
        call_recorded(event_fields, "expired" if expired else None)
    return True
