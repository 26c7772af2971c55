"""Cost tickets at the gateway (wallets/tickets/services.py has the rules): a request no wallet of
its chain can cover opens a ticket, named in its 402; a retry carrying `X-KT-Ticket: tkt_...`
redeems an approved one, its hold placed on the ticket's wallet (past zero, by at most the
ticket's estimate). docs/gateway.md, "Cost tickets"."""

from decimal import Decimal

from chargeback.errors import NotFound
from gateway.errors import GatewayError
from wallets.tickets.services import TicketRefused, ticket_open, ticket_redeem

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
