"""The pricing catalog (history-keeping edits, import/export) and usage events (read-only, with
the filtered set's totals above the list)."""

from django.contrib import admin
from django.db import transaction
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from import_export import fields, resources
from import_export.admin import ImportExportModelAdmin

from chargeback.admin_base import (
    InputFilter,
    OrgScopedAdmin,
    ReadOnlyOrgScopedAdmin,
    audit_admin_change,
    snapshot,
)
from chargeback.admin_scope import RequestScopedResource
from chargeback.money import ZERO, AmountField, to_cents
from gateway.models import Price, UsageEvent

# What a price *is*; `effective_to` alone may be set in place (closing a row keeps history).
PRICE_TERMS = [
    "provider",
    "model",
    "kind",
    "input_per_mtok",
    "output_per_mtok",
    "cached_input_per_mtok",
    "cache_write_per_mtok",
    "max_output_tokens",
    "context_window",
    "currency",
    "premium",
    "effective_from",
]


def price_is_used(price: Price) -> bool:
    return UsageEvent.objects.filter(price_id=price.pk).exists()


def price_save_keeping_history(*, price: Price, request, via_import: bool = False) -> Price:
    """Save an edited price. A price an event was billed at is never rewritten: its row is
    closed (effective_to = now) and a new row with the new terms opens now, so every past event
    keeps pointing at the terms it was charged. Unused rows are edited in place. Writes the
    audit row; the caller's transaction covers both."""
    with transaction.atomic():
        original = Price.objects.select_for_update().get(pk=price.pk)
        changed = [f for f in PRICE_TERMS if getattr(original, f) != getattr(price, f)]
        source = "import" if via_import else "admin"
        if not changed or not price_is_used(original):
            price.save()
            price.refresh_from_db()
            audit_admin_change(
                request,
                obj=price,
                action=f"price.change.{source}",
                before=snapshot(original),
                after=snapshot(price),
            )
            return price
        now = timezone.now()
        keep_to = price.effective_to if price.effective_to and price.effective_to > now else None
        original.effective_to = now
        original.save(update_fields=["effective_to"])
        price.pk = None
        price._state.adding = True
        price.effective_from = now
        price.effective_to = keep_to
        price.save()
        price.refresh_from_db()  # the audit row shows stored values (6 places), not the typed ones
        audit_admin_change(
            request,
            obj=price,
            action=f"price.close_and_open.{source}",
            before=snapshot(original),
            after=snapshot(price),
        )
        return price


class PriceResource(RequestScopedResource, resources.ModelResource):
    """CSV/XLSX rows keyed by (provider, model) against the organization's open prices.

    A row for a model without an open price creates one (effective now); a row that differs
    from an open price goes through `price_save_keeping_history` (close and open when used).
    `effective_from` / `effective_to` are exported for the record and ignored on import.
    """

    effective_from = fields.Field(
        attribute="effective_from", column_name="effective_from", readonly=True
    )
    effective_to = fields.Field(attribute="effective_to", column_name="effective_to", readonly=True)

    class Meta:
        model = Price
        fields = [*PRICE_TERMS[:-1], "effective_from", "effective_to"]
        export_order = fields
        import_id_fields = ["provider", "model"]
        skip_unchanged = True
        report_skipped = True

    def get_queryset(self):
        return Price.objects.filter(organization_id=self.organization_id, effective_to__isnull=True)

    def init_instance(self, row=None):
        return Price(organization_id=self.organization_id, effective_from=timezone.now())

    def do_instance_save(self, instance, is_create):
        if is_create:
            instance.save(force_insert=True)
            audit_admin_change(
                self.request, obj=instance, action="price.add.import", after=snapshot(instance)
            )
        else:
            price_save_keeping_history(price=instance, request=self.request, via_import=True)


class PriceAdmin(OrgScopedAdmin, ImportExportModelAdmin):
    resource_classes = [PriceResource]
    shared_when_org_null = True  # the default catalog: everyone reads it, superusers edit it
    list_display = [
        "provider",
        "model",
        "kind",
        "input_per_mtok",
        "output_per_mtok",
        "cached_input_per_mtok",
        "currency",
        "premium",
        "effective_from",
        "effective_to",
        "catalog",
    ]
    list_filter = ["provider", "kind", "premium", "currency"]
    search_fields = ["model", "provider"]
    date_hierarchy = "effective_from"

    @admin.display(description="Catalog", ordering="organization")
    def catalog(self, obj):
        return "default" if obj.organization_id is None else "organization"

    def get_resource_kwargs(self, request, *args, **kwargs):
        return {"request": request}

    def has_import_permission(self, request):
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request):
        return self.has_view_permission(request)

    def save_model(self, request, obj, form, change):
        if change:
            price_save_keeping_history(price=obj, request=request)
        else:
            super().save_model(request, obj, form, change)


admin.site.register(Price, PriceAdmin)


class EndUserFilter(InputFilter):
    title = "end user"
    parameter_name = "user"
    field_name = "user"


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyOrgScopedAdmin):
    """Every gateway request, never editable. The totals are of the filtered set, to the cent."""

    department_path = "department"
    change_list_template = "admin/gateway/usageevent/change_list.html"
    list_display = [
        "created_at",
        "request_id",
        "department",
        "consumer_group",
        "user",
        "provider",
        "model_requested",
        "status",
        "tokens",
        "cost_column",
        "above_hold",  # the provider billed more than the hold reserved (docs/pricing.md)
    ]
    list_filter = [
        "department",
        "consumer_group",
        "provider",
        "model_requested",
        EndUserFilter,
        "status",
        "above_hold",
    ]
    list_select_related = ["department", "consumer_group"]
    search_fields = ["=request_id", "=user"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    # Facet counts are one COUNT per filter choice over a year of events: not on this screen.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100

    @admin.display(description="Cost", ordering="cost")
    def cost_column(self, obj):
        # One call can cost a fraction of a cent: cents when exact, else every stored digit.
        cents = to_cents(obj.cost)
        return cents if cents == obj.cost else f"{obj.cost.normalize():f}"

    @admin.display(description="Tokens (in + out)")
    def tokens(self, obj):
        return f"{obj.prompt_tokens} + {obj.completion_tokens}"

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            totals = context["cl"].queryset.aggregate(
                cost=Coalesce(Sum("cost"), ZERO, output_field=AmountField()),
                requests=Count("id"),
                prompt_tokens=Coalesce(Sum("prompt_tokens"), 0),
                completion_tokens=Coalesce(Sum("completion_tokens"), 0),
            )
            totals["cost"] = to_cents(totals["cost"])
            totals["tokens"] = totals["prompt_tokens"] + totals["completion_tokens"]
            context["totals"] = totals
        return response
