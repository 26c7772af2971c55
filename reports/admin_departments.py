"""The departments list as finance reads it: this month's spend against budget and wallet, one
row per department (columns computed in SQL by reports/admin_columns.py). Departments are a
tenancy model (chargeback); their admin lives here, with the spend it shows."""

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList

from chargeback import display, services
from chargeback.admin_base import actor_of, request_scope
from chargeback.admin_services import ServiceAdmin
from chargeback.models import Department, Organization
from chargeback.periods import local_today, month_end, month_start
from reports.admin_columns import annotate_departments
from reports.dashboards.selectors import Repeats, repeats_by_department


@admin.register(Department)
class DepartmentAdmin(ServiceAdmin):
    """The finance view: this month's spend against budget and wallet, one row per department."""

    department_path = "pk"
    list_display = [
        "name",
        "team_id",
        "mtd_spend_column",
        "budget_column",
        "percent_used_column",
        "wallet_available_column",
        "wallet_status_column",
        "cache_saved_column",
        "cache_would_save_column",
    ]
    search_fields = ["name", "team_id"]
    fields = ["organization", "team_id", "name", "owner_emails", "fall_through"]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["organization", "team_id"] if obj is not None else []
        return [*super().get_readonly_fields(request, obj), *fixed]

    def service_save(self, request, form, change):
        data, actor = form.cleaned_data, actor_of(request)
        if change:
            return services.department_update(
                department=form.instance,
                actor=actor,
                via="admin",
                name=data["name"],
                owner_emails=data["owner_emails"],
                fall_through=data["fall_through"],
            )
        return services.department_create(
            organization=data["organization"],
            team_id=data["team_id"],
            name=data["name"],
            owner_emails=data["owner_emails"],
            fall_through=data["fall_through"],
            actor=actor,
            via="admin",
        )

    def service_delete(self, request, obj):
        services.department_delete(department=obj, actor=actor_of(request), via="admin")

    def get_changelist(self, request, **kwargs):
        return _WouldSaveChangeList

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request_scope(request).superuser:
            organizations = Organization.objects.all()
        else:
            organizations = Organization.objects.filter(pk=request_scope(request).organization_id)
        return annotate_departments(qs, organizations=list(organizations))

    @admin.display(description="Month-to-date spend", ordering="mtd_spend")
    def mtd_spend_column(self, obj):
        return display.money(obj.mtd_spend)

    @admin.display(description="Budget (month)", ordering="budget_amount", empty_value="—")
    def budget_column(self, obj):
        return None if obj.budget_amount is None else display.money(obj.budget_amount)

    @admin.display(description="% used", ordering="percent_used", empty_value="—")
    def percent_used_column(self, obj):
        return None if obj.percent_used is None else display.percent(obj.percent_used)

    @admin.display(description="Wallet available", ordering="wallet_available", empty_value="—")
    def wallet_available_column(self, obj):
        return None if obj.wallet_available is None else display.money(obj.wallet_available)

    @admin.display(description="Wallet status", ordering="wallet_status", empty_value="—")
    def wallet_status_column(self, obj):
        return obj.wallet_status or None

    @admin.display(description="Cache saved (month)", ordering="mtd_cache_saved")
    def cache_saved_column(self, obj):
        return display.money(obj.mtd_cache_saved)

    @admin.display(description="Caching would save (month)", empty_value="—")
    def cache_would_save_column(self, obj):
        would = getattr(obj, "cache_would_save", None)
        return None if would is None else display.money(would)


class _WouldSaveChangeList(ChangeList):
    """Adds what caching would save this month to the page's departments: the dashboards' own
    computation (repeated prompts), once per organization on the page."""

    def get_results(self, request):
        super().get_results(request)
        by_org = {}
        for department in self.result_list:
            by_org.setdefault(department.organization_id, []).append(department)
        for departments in by_org.values():
            organization = departments[0].organization
            today = local_today(organization)
            repeats = repeats_by_department(
                organization=organization, date_from=month_start(today), date_to=month_end(today)
            )
            for department in departments:
                department.cache_would_save = repeats.get(department.pk, Repeats()).savings
