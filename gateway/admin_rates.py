"""Exchange rates in the admin: added (never edited: a new rate is a new row from a later
instant), listed with the shared table, imported and exported as CSV/XLSX like prices."""

from django.contrib import admin
from django.core.exceptions import ValidationError
from import_export import resources
from import_export.admin import ImportExportModelAdmin

from chargeback.admin_base import actor_of, request_organization
from chargeback.admin_scope import RequestScopedResource
from chargeback.admin_services import ServiceAdmin
from chargeback.errors import ApplicationError
from gateway.exchange import exchange_rate_create
from gateway.models import ExchangeRate

_TERMS = ("from_currency", "to_currency", "rate", "effective_from")


class ExchangeRateResource(RequestScopedResource, resources.ModelResource):
    """Rows (from_currency, to_currency, rate, effective_from) of the organization's own table.
    A row for a new instant adds a rate (gateway/exchange.py); a row equal to an existing one is
    skipped; a different rate for an existing instant is refused on its row (rates that
    converted events are never rewritten: add one from a later instant)."""

    class Meta:
        model = ExchangeRate
        fields = list(_TERMS)
        export_order = fields
        import_id_fields = ["from_currency", "to_currency", "effective_from"]
        skip_unchanged = True
        report_skipped = True

    def get_queryset(self):
        return ExchangeRate.objects.filter(organization_id=self.organization_id)

    def init_instance(self, row=None):
        return ExchangeRate(organization_id=self.organization_id)

    def do_instance_save(self, instance, is_create):
        if not is_create:
            raise ValidationError(
                {"rate": "a rate is never changed: add one with a later effective_from"}
            )
        try:
            created = exchange_rate_create(
                organization=instance.organization,
                actor=actor_of(self.request),
                via="admin",
                **{term: getattr(instance, term) for term in _TERMS},
            )
        except ApplicationError as exc:  # import-export reports it on the row
            raise ValidationError(exc.field_errors()) from None
        instance.pk = created.pk


class ExchangeRateAdmin(ServiceAdmin, ImportExportModelAdmin):
    resource_classes = [ExchangeRateResource]
    shared_when_org_null = True  # the shared table: everyone reads it, superusers add to it
    list_display = ["from_currency", "to_currency", "rate", "effective_from", "table"]
    list_filter = ["from_currency", "to_currency"]
    date_hierarchy = "effective_from"

    @admin.display(description="Table", ordering="organization")
    def table(self, obj):
        return "shared" if obj.organization_id is None else "organization"

    def get_resource_kwargs(self, request, *args, **kwargs):
        return {"request": request}

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # events keep the rate they were converted at; a later rate replaces it

    def has_import_permission(self, request):
        return self.has_add_permission(request)

    def has_export_permission(self, request):
        return self.has_view_permission(request)

    def service_save(self, request, form, change):
        data = form.cleaned_data
        organization = data.get("organization")
        if organization is None and not request.user.is_superuser:
            organization = request_organization(request)
        return exchange_rate_create(
            organization=organization,
            actor=actor_of(request),
            via="admin",
            **{term: data[term] for term in _TERMS},
        )


admin.site.register(ExchangeRate, ExchangeRateAdmin)
