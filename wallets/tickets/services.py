"""Cost ticket writes: open (the gateway's refusal), approve, deny (finance: admin, API, CLI),
redeem (a retried request), expire (the hold sweeper). Each validates, writes, audits and
announces the change once committed (wallets/tickets/events.py: metrics, alert channels).

Approval moves no money: it allows the ticket's wallet one hold past zero, by at most the
ticket's estimate, which the redeeming request places (`ticket_redeem`). The hold is then
captured like any other (a capture above the hold follows the usual rule, docs/pricing.md).
"""

import secrets
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError, NotFound
from chargeback.money import quantize, storage_str
from wallets.models import Wallet
from wallets.models_tickets import CostTicket
from wallets.services.holds import hold_place
from wallets.tickets import events

Status = CostTicket.Status


class TicketRefused(ApplicationError):
    """A ticket that cannot be redeemed (or decided): 409, `ticket_<reason>`."""

    status_code = 409
    code = "ticket_refused"


def new_ticket_id() -> str:
    return f"tkt_{secrets.token_hex(12)}"


def ticket_open(
    *,
    wallet: Wallet,
    department_id: int | None,
    consumer_group_id: int | None,
    user_ref: str,
    model: str,
    estimate: Decimal,
    request_id: str,
) -> CostTicket:
    """A pending ticket for a refused request; the department's budget owners are told once it
    has committed (wallets/tickets/notify.py, a Celery task)."""
    now = timezone.now()
    with transaction.atomic():
        ticket = CostTicket.objects.create(
            ticket_id=new_ticket_id(),
            organization_id=wallet.organization_id,
            department_id=department_id,
            consumer_group_id=consumer_group_id,
            wallet=wallet,
            user_ref=user_ref[:200],
            model=model[:200],
            estimate=quantize(estimate),
            currency=wallet.currency,
            request_id=request_id,
            expires_at=now + timedelta(hours=settings.KT_COST_TICKET_HOURS),
            created_at=now,
        )
        audit_record(
            organization=ticket.organization,
            actor="gateway",
            via="gateway",
            action="cost_ticket.open",
            obj=ticket,
            after={"ticket": ticket.ticket_id, "estimate": storage_str(ticket.estimate)},
        )
        from wallets.tickets.notify import ticket_opened_notify

        pk = ticket.pk
        transaction.on_commit(lambda: ticket_opened_notify.delay(pk))
        events.ticket_event(events.OPENED, ticket)
    return ticket


def _decide(*, organization, ticket_id: str, to: str, actor: str, via: str) -> CostTicket:
    """Approve or deny a pending ticket of `organization`'s. Deciding it again the same way
    answers the ticket as it is (idempotent); any other state is a 409. A ticket found past its
    expiry is closed (committed) before the 409, instead of waiting for the sweeper."""
    with transaction.atomic():
        ticket = (
            CostTicket.objects.select_for_update()
            .filter(organization=organization, ticket_id=ticket_id)
            .first()
        )
        if ticket is None:
            raise NotFound(f"no cost ticket {ticket_id}")
        if ticket.status == to:
            return ticket
        if ticket.status != Status.PENDING:
            raise TicketRefused(f"cost ticket {ticket_id} is {ticket.status}, not pending")
        if ticket.expires_at > timezone.now():
            return _decided(ticket, to, actor=actor, via=via)
        _expire_one(ticket)
    raise TicketRefused(f"cost ticket {ticket_id} is expired, not pending")


def _decided(ticket: CostTicket, to: str, *, actor: str, via: str) -> CostTicket:
    now = timezone.now()
    ticket.status, ticket.decided_at, ticket.decided_by = to, now, actor
    fields = ["status", "decided_at", "decided_by"]
    if to == Status.APPROVED:  # redeemable until then (KT_COST_TICKET_APPROVED_HOURS)
        ticket.expires_at = now + timedelta(hours=settings.KT_COST_TICKET_APPROVED_HOURS)
        fields.append("expires_at")
    ticket.save(update_fields=fields)
    audit_record(
        organization=ticket.organization,
        actor=actor,
        via=via,
        action=f"cost_ticket.{'approve' if to == Status.APPROVED else 'deny'}",
        obj=ticket,
        before={"status": Status.PENDING},
        after={
            "status": to,
            "overdraft": storage_str(ticket.estimate) if to == Status.APPROVED else "0",
            "wallet": ticket.wallet_id,
        },
    )
    events.ticket_event(events.APPROVED if to == Status.APPROVED else events.DENIED, ticket)
    return ticket


def ticket_approve(*, organization, ticket_id: str, actor: str, via: str) -> CostTicket:
    return _decide(
        organization=organization, ticket_id=ticket_id, to=Status.APPROVED, actor=actor, via=via
    )


def ticket_deny(*, organization, ticket_id: str, actor: str, via: str) -> CostTicket:
    return _decide(
        organization=organization, ticket_id=ticket_id, to=Status.DENIED, actor=actor, via=via
    )


def ticket_redeem(
    *,
    organization_id: int,
    consumer_group_id: int | None,
    ticket_id: str,
    amount: Decimal,
    request_id: str,
    department_id: int | None,
):
    """Redeem an approved ticket for a retried request: its hold of `amount` (the retry's worst
    case, at most the ticket's estimate) on the ticket's wallet, past zero if need be. Once:
    the ticket is locked and marked redeemed in the hold's transaction. Another organization's
    or consumer group's ticket is unknown here (NotFound)."""
    amount = quantize(amount)
    with transaction.atomic():
        ticket = (
            CostTicket.objects.select_for_update()
            .select_related("wallet")
            .filter(
                organization_id=organization_id,
                consumer_group_id=consumer_group_id,
                ticket_id=ticket_id,
            )
            .first()
        )
        if ticket is None:
            raise NotFound(f"no cost ticket {ticket_id} for this consumer group")
        if ticket.status == Status.APPROVED and ticket.expires_at <= timezone.now():
            # Approved too long ago (KT_COST_TICKET_APPROVED_HOURS); the sweeper closes it.
            raise TicketRefused(f"cost ticket {ticket_id} is expired, not approved")
        if ticket.status != Status.APPROVED:
            raise TicketRefused(f"cost ticket {ticket_id} is {ticket.status}, not approved")
        if amount > ticket.estimate:
            raise TicketRefused(
                f"this request's worst case {amount} {ticket.currency} exceeds cost ticket "
                f"{ticket_id}'s approved {ticket.estimate} {ticket.currency}"
            )
        hold = hold_place(
            wallet=ticket.wallet,
            amount=amount,
            request_id=request_id,
            enforce=False,
            department_id=department_id,
        )
        ticket.status, ticket.redeemed_at = Status.REDEEMED, timezone.now()
        ticket.redeemed_request_id = request_id
        ticket.save(update_fields=["status", "redeemed_at", "redeemed_request_id"])
        audit_record(
            organization=ticket.organization,
            actor="gateway",
            via="gateway",
            action="cost_ticket.redeem",
            obj=ticket,
            after={"request_id": request_id, "hold": hold.pk, "amount": storage_str(amount)},
        )
        events.ticket_event(events.REDEEMED, ticket)
        return hold


def _close(ticket: CostTicket, to: str, *, actor: str, via: str, action: str, after=None):
    """Move a ticket to a final state it reaches without a decision (expired, cancelled):
    saved, audited, announced."""
    before = ticket.status
    ticket.status = to
    ticket.save(update_fields=["status"])
    audit_record(
        organization=ticket.organization,
        actor=actor,
        via=via,
        action=action,
        obj=ticket,
        before={"status": before},
        after=after,
    )
    events.ticket_event(events.EXPIRED if to == Status.EXPIRED else events.CANCELLED, ticket)


def _expire_one(ticket: CostTicket) -> None:
    _close(ticket, Status.EXPIRED, actor="system", via="task", action="cost_ticket.expire")


def tickets_expire(*, limit: int = 1000) -> int:
    """Close tickets past their expiry (the hold sweeper calls it): pending ones nobody decided
    (KT_COST_TICKET_HOURS after they opened) and approved ones nobody redeemed
    (KT_COST_TICKET_APPROVED_HOURS after their approval). Returns how many."""
    expired = 0
    with transaction.atomic():
        due = CostTicket.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            status__in=(Status.PENDING, Status.APPROVED), expires_at__lte=timezone.now()
        )
        for ticket in due.select_related("organization")[:limit]:
            _expire_one(ticket)
            expired += 1
    return expired


def ticket_cancel(*, ticket_id: str, organization_id: int, reason: str) -> bool:
    """Close a pending ticket its waiting request no longer needs (funds arrived and it was
    held normally) or abandoned (the client went away). False when it was decided meanwhile."""
    with transaction.atomic():
        ticket = (
            CostTicket.objects.select_for_update()
            .filter(organization_id=organization_id, ticket_id=ticket_id, status=Status.PENDING)
            .first()
        )
        if ticket is None:
            return False
        _close(
            ticket,
            Status.CANCELLED,
            actor="gateway",
            via="gateway",
            action="cost_ticket.cancel",
            after={"reason": reason},
        )
        return True


def ticket_status(*, ticket_pk: int) -> str:
    return CostTicket.objects.filter(pk=ticket_pk).values_list("status", flat=True).get()
