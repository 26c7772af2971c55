"""The pricing catalog (history-keeping edits, import/export) and usage events (read-only, with
the filtered set's totals above the list)."""

import secrets

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from import_export import fields, resources
from import_export.admin import ImportExportModelAdmin

from chargeback import display
from chargeback.admin_audit import audited_by_service
from chargeback.admin_base import (
    InputFilter,
    ReadOnlyOrgScopedAdmin,
    actor_of,
    request_organization,
)
from chargeback.admin_scope import RequestScopedResource
from chargeback.admin_services import ServiceAdmin
from chargeback.errors import ApplicationError
from chargeback.money import AMOUNT_DIGITS, AMOUNT_PLACES, to_cents
from gateway import prices
from gateway.admin_events import (
    ModelFilter,
    PolicyFilter,
    PriceCurrencyFilter,
    ProviderFilter,
    RollupCountPaginator,
    event_totals,
    rollup_totals,
)
from gateway.models import Price, UsageEvent
from wallets.services import wallet_refund


def _terms(instance: Price) -> dict:
    return {field: getattr(instance, field) for field in prices.TERMS}


class PriceResource(RequestScopedResource, resources.ModelResource):
    """CSV/XLSX rows keyed by (provider, model) against the organization's open prices.

    A row for a model without an open price creates one (effective now); a row that differs
    from an open price changes it through gateway/prices.py (closed and reopened when used).
    `effective_from` / `effective_to` are exported for the record and ignored on import.
    """

    effective_from = fields.Field(
        attribute="effective_from", column_name="effective_from", readonly=True
    )
    effective_to = fields.Field(attribute="effective_to", column_name="effective_to", readonly=True)

    class Meta:
        model = Price
        fields = [*prices.TERMS[:-1], "effective_from", "effective_to"]
        export_order = fields
        import_id_fields = ["provider", "model"]
        skip_unchanged = True
        report_skipped = True

    def get_queryset(self):
        return Price.objects.filter(organization_id=self.organization_id, effective_to__isnull=True)

    def init_instance(self, row=None):
        return Price(organization_id=self.organization_id, effective_from=timezone.now())

    def do_instance_save(self, instance, is_create):
        actor = actor_of(self.request)
        try:
            if is_create:
                created = prices.price_create(
                    organization=instance.organization, actor=actor, via="admin", **_terms(instance)
                )
                instance.pk = created.pk
            else:
                prices.price_update(price=instance, actor=actor, via="admin", **_terms(instance))
        except ApplicationError as exc:  # import-export reports it on the row
            raise ValidationError(exc.field_errors()) from None


class PriceAdmin(ServiceAdmin, ImportExportModelAdmin):
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

    def service_save(self, request, form, change):
        data = form.cleaned_data
        terms = {f: data[f] for f in (*prices.TERMS, "effective_to") if f in data}
        if change:
            return prices.price_update(
                price=form.instance, actor=actor_of(request), via="admin", **terms
            )
        organization = data.get("organization")
        if organization is None and not request.user.is_superuser:
            organization = request_organization(request)
        return prices.price_create(
            organization=organization, actor=actor_of(request), via="admin", **terms
        )

    def service_delete(self, request, obj):
        prices.price_delete(price=obj, actor=actor_of(request), via="admin")


admin.site.register(Price, PriceAdmin)


class EndUserFilter(InputFilter):
    title = "end user"
    parameter_name = "user"
    field_name = "user"


class RefundForm(forms.Form):
    amount = forms.DecimalField(
        max_digits=AMOUNT_DIGITS,
        decimal_places=AMOUNT_PLACES,
        min_value=0,
        required=False,
        help_text="Leave empty to refund all that is left of each selected call.",
    )
    reason = forms.CharField(max_length=500)
    # One token per rendered form: a double submit replays instead of refunding twice.
    token = forms.CharField(widget=forms.HiddenInput)


def _amount_cell(value):
    # One call can cost a fraction of a cent: cents when exact, else every stored digit.
    return display.amount(value)


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyOrgScopedAdmin):
    """Every gateway request, never editable. The totals are of the filtered set, to the cent."""

    department_path = "department"
    change_list_template = "admin/gateway/usageevent/change_list.html"
    # Fits 1440 px beside the navigation and the filters, money included: the request id, the
    # consumer group and the provider are on each event's page and in the filters/search.
    list_display = [
        "created_at",
        "department",
        "user",
        "model_requested",
        "status",
        "tokens",
        "cost_column",
        "saved_column",
        "above_hold",  # the provider billed more than the hold reserved (docs/pricing.md)
    ]
    list_filter = [
        "department",
        "consumer_group",
        ProviderFilter,  # choices from the rollups (gateway/admin_events.py)
        ModelFilter,
        EndUserFilter,
        "status",
        "above_hold",
        PolicyFilter,  # the routing policy rule that changed the model (gateway/policies.py)
        PriceCurrencyFilter,  # priced in another currency and converted (docs/pricing.md)
    ]
    list_select_related = ["department", "consumer_group"]
    search_fields = ["=request_id", "=user"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    # Facet counts are one COUNT per filter choice over a year of events: not on this screen.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    actions = ["refund"]

    def has_refund_permission(self, request):
        # Refunds move money into a wallet: whoever may fund wallets may refund calls.
        return self._in_scope(request) and request.user.has_perm("wallets.change_wallet")

    @admin.action(description="Refund the selected calls", permissions=["refund"])
    @audited_by_service
    def refund(self, request, queryset):
        events = list(queryset.select_related("department"))
        if "apply" in request.POST:
            form = RefundForm(request.POST)
            if form.is_valid():
                self._apply_refunds(request, events, form.cleaned_data)
                return None
        else:
            form = RefundForm(initial={"token": secrets.token_hex(12)})
        return TemplateResponse(
            request,
            "admin/gateway/usageevent/refund_action.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Refund the selected calls",
                "objects": events,
                "form": form,
                "action": "refund",
                "changelist_url": reverse("admin:gateway_usageevent_changelist"),
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )

    def _apply_refunds(self, request, events, data):
        for event in events:
            try:
                entry, _ = wallet_refund(
                    organization=event.organization,
                    request_id=event.request_id,
                    amount=data["amount"],
                    reason=data["reason"],
                    idempotency_key=f"admin:{data['token']}:{event.pk}",
                    actor=actor_of(request),
                    via="admin",
                )
            except ApplicationError as exc:
                self.message_user(request, f"{event.request_id}: {exc}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{event.request_id}: refunded {display.amount(entry.amount, entry.currency)}.",
                    messages.SUCCESS,
                )

    @admin.display(description="Cost", ordering="cost")
    def cost_column(self, obj):
        return _amount_cell(obj.cost)

    @admin.display(description="Saved (cache hit)", ordering="saved", empty_value="—")
    def saved_column(self, obj):
        return _amount_cell(obj.saved) if obj.status == UsageEvent.Status.CACHE_HIT else None

    @admin.display(description="Tokens (in + out)")
    def tokens(self, obj):
        return f"{display.count(obj.prompt_tokens)} + {display.count(obj.completion_tokens)}"

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        totals = rollup_totals(request)
        if totals is None:
            return super().get_paginator(
                request, queryset, per_page, orphans, allow_empty_first_page
            )
        return RollupCountPaginator(
            queryset,
            per_page,
            count=totals["requests"],
            orphans=orphans,
            allow_empty_first_page=allow_empty_first_page,
        )

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            totals = rollup_totals(request)
            if totals is None:  # filters the rollups cannot answer
                totals = event_totals(context["cl"].queryset)
            context["totals"] = {
                **totals,
                "cost": to_cents(totals["cost"]),
                "cache_saved": to_cents(totals["cache_saved"]),
                "tokens": totals["prompt_tokens"] + totals["completion_tokens"],
            }
        return response


from gateway import admin_rates  # noqa: E402, F401  (exchange rates: gateway/admin_rates.py)
from gateway.response_cache import admin as response_cache_admin  # noqa: E402, F401  (registers it)
