"""Idempotency-Key for funding operations: the same key and request give the first result
again; the same key with another request is a conflict. The key is stored on the ledger entry
the first request wrote (unique per organization), so a replay is found in the ledger itself."""

import hashlib
import json
from decimal import Decimal

from django.db import IntegrityError, transaction

from chargeback.errors import IdempotencyConflict
from wallets.models import LedgerEntry


def amount_key(amount) -> str:
    """The amount as the request hash sees it: 20000, 20000.0 and "20000.00" are one request."""
    if isinstance(amount, Decimal) and amount.is_finite():
        return format(amount.normalize(), "f")
    return str(amount)


def request_fingerprint(**fields) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def replayed(organization, idempotency_key, request_hash) -> LedgerEntry | None:
    """The entry an earlier request with this key made (None if new); a different request -> 409."""
    if not idempotency_key:
        return None
    entry = LedgerEntry.objects.filter(
        organization=organization, idempotency_key=idempotency_key
    ).first()
    if entry is None:
        return None
    if entry.request_hash != request_hash:
        raise IdempotencyConflict("Idempotency-Key was already used with a different request")
    return entry


def idempotent_write(organization, idempotency_key, request_hash, write):
    """Run `write()` (which locks its wallet, then checks `replayed`) in one transaction. The
    idempotency key is unique per organization, not per wallet: when a concurrent request with
    the same key commits first, the unique constraint fires and we answer as a replay (or a
    conflict) instead of a 500."""
    try:
        with transaction.atomic():
            return write()
    except IntegrityError:
        replay = replayed(organization, idempotency_key, request_hash)
        if replay is None:
            raise
        return replay, False
