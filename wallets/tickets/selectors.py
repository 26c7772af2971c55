"""Cost ticket reads, always within one organization."""

from datetime import timedelta

from django.db.models import Q, QuerySet

from wallets.models_tickets import CostTicket


def tickets_for_org(*, organization, status: str | None = None) -> QuerySet[CostTicket]:
    rows = CostTicket.objects.filter(organization=organization).select_related(
        "department", "consumer_group", "wallet"
    )
    if status:
        rows = rows.filter(status=status)
    return rows.order_by("-created_at", "-id")


def ticket_follows_another(
    ticket: CostTicket, *, window: timedelta, field: str = "created_at", status: str = ""
) -> bool:
    """Another ticket of the same department (of `status`, when given) has its `field` within
    `window` before this one's (ties: the lower id first). The throttle of the owners' e-mail
    (wallets/tickets/notify.py) and of Slack (alert_channels/ticket_events.py)."""
    at = getattr(ticket, field)
    earlier = Q(**{f"{field}__lt": at}) | Q(**{field: at, "pk__lt": ticket.pk})
    others = CostTicket.objects.filter(
        earlier,
        organization_id=ticket.organization_id,
        department_id=ticket.department_id,
        **{f"{field}__gte": at - window},
    ).exclude(pk=ticket.pk)
    if status:
        others = others.filter(status=status)
    return others.exists()
