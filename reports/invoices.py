"""Provider invoice writes (the admin's form and its CSV/XLSX import): one invoice per
provider and month of an organization, what the provider billed, for reconciliation."""

from datetime import date
from decimal import Decimal

from django.db import transaction

from chargeback.audit import audit_record, audited_delete
from chargeback.errors import collect_errors
from chargeback.models import Organization
from chargeback.money import CURRENCIES, ZERO, quantize
from reports.models import ProviderInvoice


def _state(invoice: ProviderInvoice) -> dict:
    return {
        "provider": invoice.provider,
        "period": invoice.period.isoformat(),
        "amount": str(invoice.amount),
        "currency": invoice.currency,
        "reference": invoice.reference,
    }


def provider_invoice_check(invoice: ProviderInvoice) -> None:
    """Every rule an invoice obeys: ValidationFailed naming each field."""
    errors = collect_errors()
    if not invoice.provider:
        errors.add("provider", "provider is required")
    if not isinstance(invoice.period, date) or invoice.period.day != 1:
        errors.add("period", "the first day of the billed month")
    amount = invoice.amount
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount < ZERO:
        errors.add("amount", "an amount of zero or more")
    elif quantize(amount) != amount:
        errors.add("amount", "at most 8 decimal places")
    if invoice.currency not in CURRENCIES:
        errors.add("currency", f"unknown currency {invoice.currency!r}")
    duplicate = ProviderInvoice.objects.filter(
        organization_id=invoice.organization_id, provider=invoice.provider, period=invoice.period
    ).exclude(pk=invoice.pk)
    if invoice.provider and isinstance(invoice.period, date) and duplicate.exists():
        errors.add("period", f"{invoice.provider} already has an invoice for this month")
    errors.raise_if_any()


def provider_invoice_save(
    *,
    organization: Organization,
    provider: str,
    period: date,
    amount: Decimal,
    currency: str,
    reference: str = "",
    invoice: ProviderInvoice | None = None,
    actor: str,
    via: str,
) -> ProviderInvoice:
    """Record an invoice, or change `invoice`. Provider names are lower case and currencies
    upper case, so a re-import of the same month finds its row."""
    invoice = invoice or ProviderInvoice(organization=organization)
    before = _state(invoice) if invoice.pk else None
    invoice.provider = (provider or "").strip().lower()
    invoice.period = period
    invoice.amount = amount
    invoice.currency = (currency or "").strip().upper()
    invoice.reference = reference or ""
    provider_invoice_check(invoice)
    after = _state(invoice)
    if before == after:
        return invoice
    with transaction.atomic():
        invoice.save()
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="provider_invoice.update" if before else "provider_invoice.create",
            obj=invoice,
            before=before,
            after=after,
        )
    return invoice


def provider_invoice_delete(*, invoice: ProviderInvoice, actor: str, via: str) -> None:
    audited_delete(
        invoice, actor=actor, via=via, action="provider_invoice.delete", before=_state(invoice)
    )
