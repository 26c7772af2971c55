"""Wallets with their ledger, funding actions that go through wallets/services, and the
append-only records (ledger entries, holds) read-only."""

import secrets

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.forms.models import BaseInlineFormSet
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from chargeback import display
from chargeback.admin_audit import audited_by_service
from chargeback.admin_base import ReadOnlyOrgScopedAdmin, actor_of
from chargeback.admin_paging import CappedCountAdminMixin
from chargeback.admin_services import ServiceAdmin
from chargeback.errors import ApplicationError
from chargeback.money import AMOUNT_DIGITS, AMOUNT_PLACES, ZERO
from wallets import selectors, services
from wallets.models import Hold, LedgerEntry, Wallet

LEDGER_INLINE_LIMIT = 20


class NewestEntriesFormSet(BaseInlineFormSet):
    """Only the newest entries: a busy wallet has one capture per request."""

    def get_queryset(self):
        if not hasattr(self, "_newest"):
            self._newest = (
                super().get_queryset().order_by("-created_at", "-id")[:LEDGER_INLINE_LIMIT]
            )
        return self._newest


class EntryColumns:
    """A ledger entry's money as people read it (chargeback/display.py): every stored digit of
    a sub-cent capture, never an exponent."""

    @admin.display(description="Amount", ordering="amount")
    def amount_column(self, obj):
        return display.amount(obj.amount)

    @admin.display(description="Balance after", ordering="balance_after")
    def balance_after_column(self, obj):
        return display.amount(obj.balance_after)


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    formset = NewestEntriesFormSet
    fields = [
        "created_at",
        "kind",
        "amount_column",
        "balance_after_column",
        "description",
        "reference",
        "actor",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = f"ledger (newest {LEDGER_INLINE_LIMIT} entries)"

    amount_column = EntryColumns.amount_column
    balance_after_column = EntryColumns.balance_after_column

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class FundingForm(forms.Form):
    amount = forms.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    reason = forms.CharField(max_length=500)
    # One token per rendered form: a double submit replays instead of funding twice.
    token = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, signed=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.signed = signed
        if signed:
            self.fields["amount"].help_text = "Signed: negative takes funds out."

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == ZERO or (amount < ZERO and not self.signed):
            raise forms.ValidationError(
                "Enter a non-zero amount." if self.signed else "Enter an amount above zero."
            )
        return amount


FUNDING_ACTIONS = {
    "allocate": ("Allocate funds", False),
    "reclaim": ("Reclaim unspent funds to the organization wallet", False),
    "adjust": ("Adjust the balance (signed correction)", True),
}


@admin.register(Wallet)
class WalletAdmin(ServiceAdmin):
    department_path = "department"
    list_display = [
        "name",
        "scope",
        "department",
        "currency",
        "balance_column",
        "reserved_column",
        "available_column",
        "allocated_column",
        "spent_column",
        "status_column",
    ]
    list_filter = ["scope", "department"]
    list_select_related = ["department"]
    search_fields = ["name", "user_ref", "department__team_id"]
    fields = [
        "organization",
        "name",
        "scope",
        "department",
        "user_ref",
        "currency",
        "balance",
        "held",
        # What finance asks of a wallet first, as on the list (wallets/selectors.py totals).
        "available_column",
        "allocated_column",
        "spent_column",
        "status_column",
        "low_threshold_percent",
        "full_ledger",
    ]
    inlines = [LedgerEntryInline]
    actions = ["allocate", "reclaim", "adjust"]

    def get_readonly_fields(self, request, obj=None):
        # Money moves only through the actions (wallets/services), never by editing a number.
        return [
            "organization",
            "scope",
            "department",
            "user_ref",
            "currency",
            "balance",
            "held",
            "available_column",
            "allocated_column",
            "spent_column",
            "status_column",
            "full_ledger",
        ]

    def service_save(self, request, form, change):
        data = form.cleaned_data
        return services.wallet_update(
            wallet=form.instance,
            actor=actor_of(request),
            via="admin",
            name=data["name"],
            low_threshold_percent=data["low_threshold_percent"],
        )

    @admin.display(description="Ledger")
    def full_ledger(self, obj):
        url = reverse("admin:wallets_ledgerentry_changelist") + f"?wallet__id__exact={obj.pk}"
        return format_html('<a href="{}">all entries of this wallet</a>', url)

    def has_add_permission(self, request):
        return False  # wallets are created by their first allocation

    def has_delete_permission(self, request, obj=None):
        return False  # the ledger protects them

    def get_queryset(self, request):
        return selectors.wallet_annotate_totals(queryset=super().get_queryset(request))

    @admin.display(description="Balance", ordering="balance")
    def balance_column(self, obj):
        return display.money(obj.balance)

    @admin.display(description="Reserved", ordering="held")
    def reserved_column(self, obj):
        return display.money(obj.held)

    @admin.display(description="Available", ordering="available_amount")
    def available_column(self, obj):
        return display.money(obj.available_amount)

    @admin.display(description="Total allocated", ordering="total_allocated")
    def allocated_column(self, obj):
        return display.money(obj.total_allocated)

    @admin.display(description="Total spent", ordering="total_spent")
    def spent_column(self, obj):
        return display.money(obj.total_spent)

    @admin.display(description="Status", ordering="status")
    def status_column(self, obj):
        return obj.status

    # --- funding actions: a confirmation form, then wallets/services ------------------------

    @admin.action(description=FUNDING_ACTIONS["allocate"][0], permissions=["change"])
    @audited_by_service
    def allocate(self, request, queryset):
        return self._funding_action(request, queryset, "allocate")

    @admin.action(description=FUNDING_ACTIONS["reclaim"][0], permissions=["change"])
    @audited_by_service
    def reclaim(self, request, queryset):
        return self._funding_action(request, queryset, "reclaim")

    @admin.action(description=FUNDING_ACTIONS["adjust"][0], permissions=["change"])
    @audited_by_service
    def adjust(self, request, queryset):
        return self._funding_action(request, queryset, "adjust")

    def _funding_action(self, request, queryset, kind):
        title, signed = FUNDING_ACTIONS[kind]
        wallets = list(queryset)
        if "apply" in request.POST:
            form = FundingForm(request.POST, signed=signed)
            if form.is_valid():
                self._apply_funding(request, wallets, kind, form.cleaned_data)
                return None
        else:
            form = FundingForm(initial={"token": secrets.token_hex(12)}, signed=signed)
        return TemplateResponse(
            request,
            "admin/wallets/wallet/funding_action.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": title,
                "objects": wallets,
                "form": form,
                "action": kind,
                "changelist_url": reverse("admin:wallets_wallet_changelist"),
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )

    def _apply_funding(self, request, wallets, kind, data):
        actor = actor_of(request)
        amount, reason = data["amount"], data["reason"]
        for wallet in wallets:
            key = f"admin:{data['token']}:{wallet.pk}"
            try:
                funding = {
                    "amount": amount,
                    "currency": wallet.currency,
                    "description": reason,
                    "idempotency_key": key,
                    "actor": actor,
                    "via": "admin",
                }
                if kind == "allocate" and wallet.scope == Wallet.Scope.TEAM:
                    services.wallet_allocate(department=wallet.department, **funding)
                elif kind == "allocate" and wallet.scope == Wallet.Scope.ORGANIZATION:
                    services.wallet_credit(organization=wallet.organization, **funding)
                elif kind == "reclaim" and wallet.scope == Wallet.Scope.TEAM:
                    services.wallet_reclaim(department=wallet.department, **funding)
                elif kind == "adjust":
                    services.wallet_adjust(
                        wallet=wallet, amount=amount, reason=reason, actor=actor, via="admin"
                    )
                else:
                    raise ApplicationError(f"{kind} applies to team wallets only")
            except ApplicationError as exc:
                self.message_user(request, f"{wallet}: {exc}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{wallet}: {kind} {display.amount(amount, wallet.currency)} done.",
                    messages.SUCCESS,
                )


@admin.register(LedgerEntry)
class LedgerEntryAdmin(CappedCountAdminMixin, EntryColumns, ReadOnlyOrgScopedAdmin):
    department_path = "wallet__department"
    list_display = [
        "created_at",
        "wallet",
        "kind",
        "amount_column",
        "balance_after_column",
        "currency",
        "description",
        "reference",
        "actor",
    ]
    list_filter = ["kind", "wallet"]
    list_select_related = ["wallet"]
    search_fields = ["=reference", "description", "actor"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # one capture per request: too many rows to count


@admin.register(Hold)
class HoldAdmin(CappedCountAdminMixin, ReadOnlyOrgScopedAdmin):
    department_path = "wallet__department"
    list_display = [
        "request_id",
        "wallet",
        "amount_column",
        "captured_column",
        "status",
        "expires_at",
    ]
    list_filter = ["status", "wallet"]
    list_select_related = ["wallet"]
    search_fields = ["=request_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description="Amount", ordering="amount")
    def amount_column(self, obj):
        return display.amount(obj.amount)

    @admin.display(description="Captured", ordering="captured_amount", empty_value="—")
    def captured_column(self, obj):
        return None if obj.captured_amount is None else display.amount(obj.captured_amount)


from wallets import admin_tickets  # noqa: E402, F401  (cost tickets: wallets/admin_tickets.py)
