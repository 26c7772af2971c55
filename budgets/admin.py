"""Budgets (through budgets/services.py, like the API and the config file) and the alerts they
and the wallets sent (read-only)."""

from django.contrib import admin

from budgets import services as budget_services
from budgets.models import Budget, BudgetAlert, WalletAlert
from chargeback import display
from chargeback.admin_base import ReadOnlyOrgScopedAdmin, actor_of
from chargeback.admin_services import ServiceAdmin


@admin.register(Budget)
class BudgetAdmin(ServiceAdmin):
    """Through budgets/services.py, like the API and the config file."""

    department_path = "department"
    list_display = [
        "department",
        "period",
        "amount_column",
        "currency",
        "thresholds_column",
        "owner_emails_column",
    ]
    list_filter = ["period", "department"]
    list_select_related = ["department"]
    search_fields = ["department__team_id", "department__name"]
    autocomplete_fields = ["department"]
    fields = ["department", "period", "amount", "currency", "thresholds", "owner_emails"]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["department", "period", "currency"] if obj is not None else []
        return [*super().get_readonly_fields(request, obj), *fixed]

    def service_save(self, request, form, change):
        data = form.cleaned_data
        editable = {k: data[k] for k in budget_services.EDITABLE}
        if change:
            return budget_services.budget_update(
                budget=form.instance, actor=actor_of(request), via="admin", **editable
            )
        department = data["department"]
        return budget_services.budget_create(
            organization=department.organization,
            team_id=department.team_id,
            currency=data["currency"],
            period=data["period"],
            actor=actor_of(request),
            via="admin",
            **editable,
        )

    def service_delete(self, request, obj):
        budget_services.budget_delete(budget=obj, actor=actor_of(request), via="admin")

    @admin.display(description="Amount", ordering="amount")
    def amount_column(self, obj):
        return display.money(obj.amount)

    @admin.display(description="Thresholds")
    def thresholds_column(self, obj):
        return display.thresholds(obj.thresholds)

    @admin.display(description="Owner e-mails")
    def owner_emails_column(self, obj):
        return display.emails(obj.owner_emails)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyOrgScopedAdmin):
    department_path = "budget__department"
    list_display = [
        "budget",
        "period_start",
        "kind",
        "threshold",
        "spend_column",
        "status",
        "sent_at",
    ]
    list_filter = ["kind", "status"]
    list_select_related = ["budget__department"]

    @admin.display(description="Spend", ordering="spend")
    def spend_column(self, obj):
        return display.money(obj.spend)


@admin.register(WalletAlert)
class WalletAlertAdmin(ReadOnlyOrgScopedAdmin):
    department_path = "wallet__department"
    list_display = ["wallet", "state", "status", "created_at", "sent_at"]
    list_filter = ["state", "status"]
    list_select_related = ["wallet"]
