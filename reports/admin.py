"""Provider invoices (CSV import via django-import-export) and the reconciliation view.

Export jobs and departments (with their month's money) have admins of their own in
reports/admin_exports.py and reports/admin_departments.py, registered by importing them here.
"""

from datetime import date
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from import_export import fields, resources, widgets
from import_export.admin import ImportExportModelAdmin

from chargeback import display
from chargeback.admin_base import actor_of, request_organization
from chargeback.admin_scope import RequestScopedResource, request_scope
from chargeback.admin_services import ServiceAdmin
from chargeback.errors import ApplicationError
from chargeback.money import ZERO, quantize
from reports import admin_departments, admin_exports  # noqa: F401  (they register themselves)
from reports.admin_departments import chosen_month, month_choices
from reports.admin_reconciliation import reconciliation_rows
from reports.invoices import provider_invoice_delete, provider_invoice_save
from reports.models import ProviderInvoice


class MonthWidget(widgets.Widget):
    """`YYYY-MM` in the file, the first day of that month in the database."""

    def clean(self, value, row=None, **kwargs):
        text = str(value or "").strip()
        try:
            year, month = text.split("-")
            return date(int(year), int(month), 1)
        except ValueError as exc:
            raise ValueError(f"period must look like 2026-05, not {text!r}") from exc

    def render(self, value, obj=None, **kwargs):
        return value.strftime("%Y-%m") if value else ""


class AmountWidget(widgets.Widget):
    def clean(self, value, row=None, **kwargs):
        try:
            amount = Decimal(str(value).strip().replace(",", ""))
        except (InvalidOperation, ValueError) as exc:
            raise ValueError(f"amount must be a number, not {value!r}") from exc
        if not amount.is_finite() or amount < ZERO or quantize(amount) != amount:
            raise ValueError("amount must be zero or more with at most 8 decimal places")
        return amount

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else str(value)


class ProviderInvoiceResource(RequestScopedResource, resources.ModelResource):
    """Columns: provider, period (YYYY-MM), amount, currency[, reference]. Keyed by
    (provider, period) within the importer's organization: a second import of the same month
    updates the amount."""

    period = fields.Field(attribute="period", column_name="period", widget=MonthWidget())
    amount = fields.Field(attribute="amount", column_name="amount", widget=AmountWidget())

    class Meta:
        model = ProviderInvoice
        fields = ["provider", "period", "amount", "currency", "reference"]
        export_order = fields
        import_id_fields = ["provider", "period"]
        skip_unchanged = True
        report_skipped = True

    def get_queryset(self):
        return ProviderInvoice.objects.filter(organization_id=self.organization_id)

    def init_instance(self, row=None):
        return ProviderInvoice(organization_id=self.organization_id)

    def before_import(self, dataset, **kwargs):
        if self.organization_id is None:
            raise ValidationError("invoices are imported by staff of an organization")
        missing = {"provider", "period", "amount", "currency"} - set(dataset.headers or [])
        if missing:
            raise ValidationError(f"missing columns: {', '.join(sorted(missing))}")

    def do_instance_save(self, instance, is_create):
        try:
            provider_invoice_save(
                organization=instance.organization,
                invoice=None if is_create else instance,
                provider=instance.provider,
                period=instance.period,
                amount=instance.amount,
                currency=instance.currency,
                reference=instance.reference,
                actor=actor_of(self.request),
                via="admin",
            )
        except ApplicationError as exc:  # import-export reports it on the row
            raise ValidationError(exc.field_errors()) from None


@admin.register(ProviderInvoice)
class ProviderInvoiceAdmin(ServiceAdmin, ImportExportModelAdmin):
    resource_classes = [ProviderInvoiceResource]
    # import-export's change list extends this one (which adds the reconciliation link)
    ie_base_change_list_template = "admin/reports/providerinvoice/change_list_base.html"
    list_display = [
        "provider",
        "period_month",
        "amount_column",
        "currency",
        "reference",
        "imported_at",
    ]
    list_filter = ["provider", "currency"]
    search_fields = ["provider", "reference"]
    date_hierarchy = "period"

    @admin.display(description="Amount", ordering="amount")
    def amount_column(self, obj):
        return display.money(obj.amount)

    @admin.display(description="Month", ordering="period")
    def period_month(self, obj):
        return obj.period.strftime("%Y-%m")

    def get_resource_kwargs(self, request, *args, **kwargs):
        return {"request": request}

    def service_save(self, request, form, change):
        data = form.cleaned_data
        return provider_invoice_save(
            organization=data.get("organization") or form.instance.organization,
            invoice=form.instance if change else None,
            provider=data["provider"],
            period=data["period"],
            amount=data["amount"],
            currency=data["currency"],
            reference=data.get("reference", ""),
            actor=actor_of(request),
            via="admin",
        )

    def service_delete(self, request, obj):
        provider_invoice_delete(invoice=obj, actor=actor_of(request), via="admin")

    def has_import_permission(self, request):
        return self.has_add_permission(request) and self.has_change_permission(request)

    def import_action(self, request, *args, **kwargs):
        return self._no_organization(request) or super().import_action(request, *args, **kwargs)

    def process_import(self, request, *args, **kwargs):
        return self._no_organization(request) or super().process_import(request, *args, **kwargs)

    def _no_organization(self, request):
        """Invoices are one organization's: a superuser who is a member of one imports for it
        (chargeback/admin_scope.py); one who is a member of none is told so, not shown an error."""
        if request_scope(request).organization_id is not None:
            return None
        self.message_user(
            request,
            "Invoices are imported for one organization, and this account is a member of none: "
            "sign in as a member of the organization (or make this account one).",
            messages.ERROR,
        )
        return HttpResponseRedirect(reverse("admin:reports_providerinvoice_changelist"))

    def has_export_permission(self, request):
        return self.has_view_permission(request)

    def get_urls(self):
        return [
            path(
                "reconciliation/",
                self.admin_site.admin_view(self.reconciliation_view),
                name="reports_providerinvoice_reconciliation",
            ),
            *super().get_urls(),
        ]

    def reconciliation_view(self, request):
        """Recorded spend vs invoices per provider and month (see reports/admin_reconciliation)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        organization = request_organization(request)
        try:
            months = max(1, min(24, int(request.GET.get("months", 6))))
        except ValueError:
            months = 6
        month = chosen_month(request)
        rows = (
            reconciliation_rows(
                organization=organization,
                months=months,
                link_organization=request.user.is_superuser,
                month=month,
            )
            if organization
            else []
        )
        return TemplateResponse(
            request,
            "admin/reports/providerinvoice/reconciliation.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Reconciliation: recorded spend vs provider invoices",
                "organization": organization,
                "rows": rows,
                "months": months,
                "month": month,
                "month_choices": month_choices(),
                "window_choices": [6, 12, 24],
                "organization_query": (
                    f"&organization={request.GET['organization']}"
                    if request.GET.get("organization")
                    else ""
                ),
                "tolerance": settings.KT_RECONCILE_TOLERANCE_PERCENT,
                "invoices_url": reverse("admin:reports_providerinvoice_changelist"),
            },
        )
