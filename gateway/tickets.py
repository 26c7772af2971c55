"""Cost tickets at the gateway (wallets/tickets/services.py has the rules): a request no wallet of
its chain can cover opens a ticket, named in its 402; a retry carrying `X-KT-Ticket: tkt_...`
redeems an approved one, its hold placed on the ticket's wallet (past zero, by at most the
ticket's estimate). docs/gateway.md, "Cost tickets"."""

import os
import socket
import time
from decimal import Decimal

from chargeback.errors import InsufficientFunds, NotFound
from gateway.errors import GatewayError
from gateway.streaming import release_connection
from wallets.services import hold_reserve
from wallets.tickets.policy import Mode, ticket_policy_for
from wallets.tickets.services import (
    TicketRefused,
    ticket_cancel,
    ticket_open,
    ticket_redeem,
    ticket_status,
)


def client_gone(request) -> bool:
    """True when the client closed its connection (the body was read already: the socket
    reads as end-of-file). Under gunicorn its socket is in the environ; under Django's own
    server (runserver, the tests' live server) `wsgi.input` wraps the socket's reader in a
    LimitedStream, whose bound `read` leads to it; elsewhere nothing is known and the wait runs
    its course."""
    sock = request.META.get("gunicorn.socket")
    if sock is None:
        stream = request.META.get("wsgi.input")
        sock = getattr(getattr(stream, "_read", None), "__self__", stream)
    try:
        fd = sock.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    try:
        with socket.socket(fileno=_dup(fd)) as peek:
            return peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False  # nothing to read: still there
    except OSError:
        return True  # reset by the peer


def _dup(fd: int) -> int:
    return os.dup(fd)  # the socket object closes its own descriptor, never the server's


FIRST_POLL = 0.05
MAX_POLL = 1.0

TICKET_HEADER = "X-KT-Ticket"


def ticket_requested(request) -> str:
    """The ticket id a retried request redeems ("" when it carries none)."""
    return request.headers.get(TICKET_HEADER, "").strip()[:40]


def ticket_hold(call, ticket_id: str, worst: Decimal):
    """The retried request's hold, from its approved ticket; an OpenAI-shaped error otherwise:
    404 for a ticket this consumer group does not have (another organization's among them),
    409 for one not approved (pending, denied, expired, already redeemed) or too small."""
    ctx = call.ctx
    try:
        return ticket_redeem(
            organization_id=ctx.organization_id,
            consumer_group_id=ctx.group_id,
            ticket_id=ticket_id,
            amount=worst,
            request_id=call.request_id,
            department_id=ctx.department_id,
        )
    except NotFound as exc:
        raise GatewayError(
            404, exc.message, code="cost_ticket_not_found", param=TICKET_HEADER
        ) from None
    except TicketRefused as exc:
        raise GatewayError(
            409, exc.message, code="cost_ticket_refused", param=TICKET_HEADER
        ) from None


def ticket_or_wait(call, chain, worst: Decimal):
    """(hold, ticket) for a request no wallet of `chain` covers: a ticket is opened; with the
    group's (or organization's) `cost_tickets` mode `wait`, the request is held open up to
    `wait_seconds` and gets its hold as soon as a wallet can cover it or the ticket is approved
    (hold None: still not covered, the caller answers 402 with the ticket)."""
    ticket = ticket_for_refusal(call, chain, worst)
    ctx = call.ctx
    policy = ticket_policy_for(organization_id=ctx.organization_id, consumer_group_id=ctx.group_id)
    if policy.mode != Mode.WAIT:
        return None, ticket
    return ticket_wait(call, chain, worst, ticket, policy.wait_seconds), ticket


def ticket_wait(call, chain, worst: Decimal, ticket, seconds: float):
    """Poll, without keeping a database connection between polls (each try is one statement
    on a pooled connection, like the response cache's single flight polls its store): every
    try places the hold if a wallet of the chain can now cover it (the usual conditional
    UPDATE: concurrent waiters never take more than arrived), else reads the ticket: approved,
    it is redeemed for this request; denied, expired or cancelled, the wait ends."""
    ctx = call.ctx
    deadline = time.monotonic() + seconds
    delay = FIRST_POLL
    while (remaining := deadline - time.monotonic()) > 0:
        release_connection()
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, MAX_POLL)
        if client_gone(call.request):  # nobody to answer: the ticket is withdrawn
            ticket_cancel(
                ticket_id=ticket.ticket_id,
                organization_id=ctx.organization_id,
                reason="client gone",
            )
            return None
        try:
            hold = hold_reserve(
                wallets=chain,
                amount=worst,
                request_id=call.request_id,
                department_id=ctx.department_id,
            )
        except InsufficientFunds:
            status = ticket_status(ticket_pk=ticket.pk)
            if status == "approved":
                return ticket_hold(call, ticket.ticket_id, worst)
            if status != "pending":
                return None
            continue
        # Funds arrived: the ticket is not needed (unless finance approved it meanwhile, when
        # it stays approved for a later request of this group to redeem).
        ticket_cancel(
            ticket_id=ticket.ticket_id, organization_id=ctx.organization_id, reason="funds arrived"
        )
        return hold
    return None


def ticket_for_refusal(call, chain, worst: Decimal):
    """Open the ticket of a request no wallet of `chain` covers (on its last wallet: the one the
    cascade ends on, where an approval's overdraft lands)."""
    ctx = call.ctx
    return ticket_open(
        wallet=chain[-1],
        department_id=ctx.department_id,
        consumer_group_id=ctx.group_id,
        user_ref=str(call.user or ""),
        model=str(call.model or ""),
        estimate=worst,
        request_id=call.request_id,
    )
