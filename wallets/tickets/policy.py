"""The `cost_tickets` setting: `mode: reject` (default: 402 at once, with the ticket) or `mode:
wait` with `wait_seconds` (the gateway holds the request open that long for funds or an
approval). A consumer group's own row wins over the organization's (`consumer_group` null)."""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q

from chargeback.audit import audit_record, audited_delete
from chargeback.errors import ApplicationError
from wallets.models_tickets import CostTicketPolicy

Mode = CostTicketPolicy.Mode
MAX_WAIT_SECONDS = 600


@dataclass(frozen=True)
class TicketPolicy:
    mode: str = Mode.REJECT
    wait_seconds: int = 0


def ticket_policy_for(*, organization_id: int, consumer_group_id: int | None) -> TicketPolicy:
    """The setting that applies to a group's refused request (one query, on refusals only)."""
    rows = CostTicketPolicy.objects.filter(organization_id=organization_id).filter(
        Q(consumer_group_id=consumer_group_id) | Q(consumer_group__isnull=True)
    )
    best = min(rows, key=lambda r: r.consumer_group_id is None, default=None)
    return TicketPolicy(best.mode, best.wait_seconds) if best else TicketPolicy()


def ticket_policy_set(
    *, organization, consumer_group=None, mode: str, wait_seconds: int, actor: str, via: str
) -> tuple[CostTicketPolicy, bool]:
    """Create or change the organization's (or the group's) setting; (row, changed)."""
    if mode not in Mode.values:
        raise ApplicationError(f"mode must be one of {', '.join(Mode.values)}", field="mode")
    if mode == Mode.WAIT and not 1 <= wait_seconds <= MAX_WAIT_SECONDS:
        raise ApplicationError(
            f"wait_seconds must be 1 to {MAX_WAIT_SECONDS} with mode wait", field="wait_seconds"
        )
    if mode == Mode.REJECT:
        wait_seconds = 0
    if consumer_group is not None and consumer_group.organization_id != organization.pk:
        raise ApplicationError("not this organization's consumer group", field="consumer_group")
    with transaction.atomic():
        row = (
            CostTicketPolicy.objects.select_for_update()
            .filter(organization=organization, consumer_group=consumer_group)
            .first()
        )
        before = None if row is None else {"mode": row.mode, "wait_seconds": row.wait_seconds}
        after = {"mode": mode, "wait_seconds": wait_seconds}
        if before == after:
            return row, False
        if row is None:
            row = CostTicketPolicy(organization=organization, consumer_group=consumer_group)
        row.mode, row.wait_seconds = mode, wait_seconds
        row.save()
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="cost_ticket_policy.set",
            obj=row,
            before=before,
            after=after,
        )
        return row, True


def ticket_policy_delete(*, policy: CostTicketPolicy, actor: str, via: str) -> None:
    audited_delete(
        policy,
        actor=actor,
        via=via,
        action="cost_ticket_policy.delete",
        before={"mode": policy.mode, "wait_seconds": policy.wait_seconds},
    )
