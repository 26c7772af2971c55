"""Retention of resolved holds (issue 18; docs/operations.md "Retention and archive").

A hold is a reservation: once it is captured, released or expired it moves no more money, and
what audit needs of its request is elsewhere: the capture ledger entry (amount, `reference` =
the request id, time; append-only, never rewritten, it keeps the hold's id without a database
constraint) and the request's usage event (status, cost, tokens). Each request writes one hold
and updates it once (two versions in each of its indexes), about 350 bytes per request
(bench/index_cost.py), so resolved holds older than KT_HOLD_RETENTION_DAYS are deleted.

A hold is deleted only when it is resolved before the cut-off and, if captured, its capture
entry exists and names the request; a pending hold is never touched (the sweeper expires it).
The walk follows the primary key (ids grow with time) in windows of `batch` holds, each window
deleted in its own short transaction, and stops at the first window that starts after the
cut-off: no index beyond the primary key, no long lock, and the gateway's writes go on.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from wallets.models import Hold, LedgerEntry

__all__ = ["PruneResult", "holds_prune"]

RESOLVED = (Hold.Status.CAPTURED, Hold.Status.RELEASED, Hold.Status.EXPIRED)


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    kept: int  # resolved before the cut-off but kept: a capture without its audited entry
    cutoff: object  # datetime, or None when retention is off


def holds_prune(*, days: int | None = None, batch: int = 5000, now=None) -> PruneResult:
    """Delete the holds resolved more than `days` (default KT_HOLD_RETENTION_DAYS) ago; 0 keeps
    every hold. Idempotent: a second run finds nothing to delete."""
    days = settings.KT_HOLD_RETENTION_DAYS if days is None else days
    if days <= 0:
        return PruneResult(0, 0, None)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    audited = LedgerEntry.objects.filter(hold_id=OuterRef("pk"), kind=LedgerEntry.Kind.CAPTURE)
    audited = audited.exclude(reference="")
    removable = Q(status__in=(Hold.Status.RELEASED, Hold.Status.EXPIRED)) | Q(
        Exists(audited), status=Hold.Status.CAPTURED
    )
    deleted = kept = 0
    after = 0
    while True:
        window = list(
            Hold.objects.filter(pk__gt=after).order_by("pk").values_list("pk", "created_at")[:batch]
        )
        if not window or window[0][1] >= cutoff:
            break
        first, after = window[0][0], window[-1][0]
        old = Hold.objects.filter(
            pk__gte=first, pk__lte=after, status__in=RESOLVED, resolved_at__lt=cutoff
        )
        with transaction.atomic():
            # Nothing in the database depends on a hold (the ledger keeps only its id, no
            # constraint): Django deletes the window with one DELETE, no rows collected.
            gone, _ = old.filter(removable).delete()
        deleted += gone
        kept += old.count()  # what is left of the window's old holds: captures not audited
    return PruneResult(deleted, kept, cutoff)
