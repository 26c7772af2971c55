"""Recorded spend vs provider invoices, per provider and month, for one organization.

Recorded spend comes from gateway/selectors.py (the same sums as every other screen and file):
the events of that provider in the organization's calendar month, summed at full precision and
rounded once to cents. Variance = recorded - invoiced; percent = variance / invoiced.
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse

from chargeback.models import Organization
from chargeback.money import to_cents
from chargeback.periods import day_range, local_today, month_end
from gateway.selectors import provider_billed
from reports.models import ProviderInvoice


@dataclass
class ReconciliationRow:
    provider: str
    month: date
    recorded: Decimal
    invoiced: Decimal | None
    invoice_currency: str
    variance: Decimal | None
    percent: Decimal | None
    flagged: bool
    events_url: str


def _months_back(today: date, count: int) -> list[date]:
    months, year, month = [], today.year, today.month
    for _ in range(count):
        months.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def reconciliation_rows(
    *,
    organization: Organization,
    months: int = 6,
    tolerance_percent: float | None = None,
    link_organization: bool = False,
    month: date | None = None,
) -> list[ReconciliationRow]:
    """One row per (provider, month) having spend or an invoice in the last `months` months
    (newest first). A row is flagged when |percent| exceeds the tolerance
    (settings.KT_RECONCILE_TOLERANCE_PERCENT), or when only one side exists.
    `link_organization` adds the organization to the drill-down link (superusers see all).
    `month` (a month start): that month only, instead of the last `months`."""
    tolerance = Decimal(
        str(
            settings.KT_RECONCILE_TOLERANCE_PERCENT
            if tolerance_percent is None
            else tolerance_percent
        )
    )
    window = [month] if month else _months_back(local_today(organization), months)
    invoices = {
        (inv.provider, inv.period): inv
        for inv in ProviderInvoice.objects.filter(
            organization=organization, period__gte=window[-1], period__lte=window[0]
        )
    }
    events_url = reverse("admin:gateway_usageevent_changelist")
    rows = []
    for month in window:
        recorded = provider_billed(
            organization=organization, date_from=month, date_to=month_end(month)
        )
        providers = sorted(set(recorded) | {p for (p, m) in invoices if m == month})
        start, end = day_range(organization, month, month_end(month))
        for provider in providers:
            spent = to_cents(recorded.get(provider))
            invoice = invoices.get((provider, month))
            invoiced = to_cents(invoice.amount) if invoice else None
            variance = percent = None
            if invoiced is not None:
                variance = spent - invoiced
                if invoiced:
                    percent = (variance * 100 / invoiced).quantize(Decimal("0.01"))
            flagged = (
                invoiced is None
                or (percent is None and variance != 0)
                or (percent is not None and abs(percent) > tolerance)
                or (invoice is not None and invoice.currency != organization.currency)
            )
            params = {
                "provider": provider,
                "created_at__gte": start.isoformat(),
                "created_at__lt": end.isoformat(),
            }
            if link_organization:
                params["organization__id__exact"] = organization.pk
            query = urlencode(params)
            rows.append(
                ReconciliationRow(
                    provider=provider,
                    month=month,
                    recorded=spent,
                    invoiced=invoiced,
                    invoice_currency=invoice.currency if invoice else organization.currency,
                    variance=variance,
                    percent=percent,
                    flagged=flagged,
                    events_url=f"{events_url}?{query}",
                )
            )
    return rows
