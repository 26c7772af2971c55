"""Cost-ticket events on the alert channels: `cost_ticket.opened`, `cost_ticket.approved`,
`cost_ticket.denied` and `cost_ticket.expired`, with the facts of the owners' e-mail
(wallets/tickets/notify.py). The wallets app announces them (wallets/tickets/events.py) without
knowing this app, which sits above it.

Delivery follows the other events' rules: one ChannelDelivery per channel and event key (the key
names the ticket and the event), however often and concurrently it is published, each sent with
retries and recorded. `opened` is announced in the gateway's refusal, so it is published by a
Celery task, as its e-mail is sent; the others come from finance's decision (admin, API, CLI)
or the hold sweeper and are published there, once committed. Redeemed and cancelled tickets
are counted by the metrics only.

The throttle: every refused request opens a ticket, so a client retrying against an empty
wallet opens dozens, and the owners' e-mail tells of the first of a department's burst only
(once per 15 minutes). Slack channels are read by the same people and follow the same rule,
for `opened` and for `expired` (a burst opened together expires together). Webhooks are read by
programs (an approval bot, a ticketing system) that act on each ticket id, so they get every
event; decisions are one per ticket and go to every channel.
"""

import logging

from celery import shared_task
from django.conf import settings
from django.contrib.admin.utils import quote
from django.urls import reverse

from alert_channels import models as channel_events
from alert_channels.models import AlertChannel
from alert_channels.services.deliveries import channels_for, event_publish
from chargeback import display
from chargeback.money import storage_str
from wallets.models_tickets import CostTicket
from wallets.tickets import events
from wallets.tickets.notify import NOTICE_WINDOW
from wallets.tickets.selectors import ticket_follows_another

logger = logging.getLogger(__name__)

TYPES = {
    events.OPENED: channel_events.COST_TICKET_OPENED,
    events.APPROVED: channel_events.COST_TICKET_APPROVED,
    events.DENIED: channel_events.COST_TICKET_DENIED,
    events.EXPIRED: channel_events.COST_TICKET_EXPIRED,
}
HEADLINES = {
    events.OPENED: "A request could not be covered by any wallet and is waiting for approval.",
    events.APPROVED: "The cost ticket is approved: the request may be retried with it.",
    events.DENIED: "The cost ticket is denied.",
    events.EXPIRED: "The cost ticket expired without a decision.",
}


def ticket_event_heard(event: str, ticket: CostTicket) -> None:
    """wallets/tickets/events.py listener."""
    if event not in TYPES:
        return
    if event == events.OPENED:  # the gateway's thread: a task does the work
        try:
            cost_ticket_publish.delay(ticket.pk, event)
        except Exception:  # a broker outage must not fail the refusal
            logger.exception("could not enqueue cost ticket %s's event", ticket.ticket_id)
        return
    ticket_publish(ticket_pk=ticket.pk, event=event)


@shared_task(name="alert_channels.cost_ticket_publish", ignore_result=True)
def cost_ticket_publish(ticket_pk: int, event: str) -> int:
    return ticket_publish(ticket_pk=ticket_pk, event=event)


def ticket_publish(*, ticket_pk: int, event: str) -> int:
    """Publish `event` of the ticket to the channels that take it; returns the deliveries
    created (0 when each channel has its delivery already)."""
    ticket = (
        CostTicket.objects.select_related("organization", "department", "consumer_group")
        .filter(pk=ticket_pk)
        .first()
    )
    if ticket is None:
        return 0
    event_type = TYPES[event]
    channels = channels_for(
        organization_id=ticket.organization_id,
        department_id=ticket.department_id,
        budget_period=None,
        event_type=event_type,
    )
    if any(c.kind == AlertChannel.Kind.SLACK for c in channels) and _throttled(ticket, event):
        channels = [c for c in channels if c.kind != AlertChannel.Kind.SLACK]
    created = event_publish(
        organization_id=ticket.organization_id,
        event_type=event_type,
        event_key=f"cost_ticket:{ticket.pk}:{event}",
        facts=ticket_facts(ticket, event),
        occurred_at=_occurred_at(ticket, event),
        department_id=ticket.department_id,
        channels=channels,
    )
    return len(created)


def _throttled(ticket: CostTicket, event: str) -> bool:
    if event == events.OPENED:
        return ticket_follows_another(ticket, window=NOTICE_WINDOW)
    if event == events.EXPIRED:
        return ticket_follows_another(
            ticket, window=NOTICE_WINDOW, field="expires_at", status=CostTicket.Status.EXPIRED
        )
    return False


def _occurred_at(ticket: CostTicket, event: str):
    if event in (events.APPROVED, events.DENIED):
        return ticket.decided_at or ticket.created_at
    return ticket.expires_at if event == events.EXPIRED else ticket.created_at


def ticket_facts(ticket: CostTicket, event: str) -> dict:
    amount = display.amount(ticket.estimate, ticket.currency)
    department = ticket.department
    name = department.name if department else "-"
    subject = f"Cost ticket {ticket.ticket_id}: {amount} for {name}"
    if event != events.OPENED:
        subject = f"Cost ticket {ticket.ticket_id} {event}: {amount} for {name}"
    path = reverse("admin:wallets_costticket_change", args=[quote(ticket.pk)])
    return {
        "subject": " ".join(subject.split()),
        "headline": HEADLINES[event],
        "ticket_id": ticket.ticket_id,
        "status": ticket.status,
        "department": (
            {"team_id": department.team_id, "name": department.name} if department else None
        ),
        "consumer_group": ticket.consumer_group.name if ticket.consumer_group else None,
        "user": ticket.user_ref,
        "model": ticket.model,
        "estimate": storage_str(ticket.estimate),
        "currency": ticket.currency,
        "request_id": ticket.request_id,
        "created_at": ticket.created_at.isoformat(),
        "expires_at": ticket.expires_at.isoformat(),
        "decided_by": ticket.decided_by,
        "url": f"{settings.SITE_URL.rstrip('/')}{path}",
    }
