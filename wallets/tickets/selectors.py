"""Cost ticket reads, always within one organization."""

from django.db.models import QuerySet

from wallets.models_tickets import CostTicket


def tickets_for_org(*, organization, status: str | None = None) -> QuerySet[CostTicket]:
    rows = CostTicket.objects.filter(organization=organization).select_related(
        "department", "consumer_group", "wallet"
    )
    if status:
        rows = rows.filter(status=status)
    return rows.order_by("-created_at", "-id")
