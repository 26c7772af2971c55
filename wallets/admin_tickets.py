"""Cost tickets in the admin: the pending queue (filter by status), approve and deny as bulk
actions through wallets/tickets/services.py (which audits each real change). The rows are never
edited here: read-only like the ledger; only finance roles (owner, admin, finance) decide."""

from django.contrib import admin, messages

from chargeback import display
from chargeback.admin_audit import audited_by_service
from chargeback.admin_base import ReadOnlyOrgScopedAdmin, actor_of, request_scope
from chargeback.admin_services import ServiceAdmin
from chargeback.errors import ApplicationError
from chargeback.models import Membership
from wallets.models_tickets import CostTicket, CostTicketPolicy
from wallets.tickets import services
from wallets.tickets.policy import ticket_policy_delete, ticket_policy_set

DECIDING_ROLES = {Membership.Role.OWNER, Membership.Role.ADMIN, Membership.Role.FINANCE}


class PendingFirst(admin.SimpleListFilter):
    """Opens on the queue: pending tickets unless another status is chosen."""

    title, parameter_name = "status", "status"

    def lookups(self, request, model_admin):
        return [*CostTicket.Status.choices, ("all", "All")]

    def queryset(self, request, queryset):
        value = self.value() or CostTicket.Status.PENDING
        return queryset if value == "all" else queryset.filter(status=value)

    def choices(self, changelist):
        current = self.value() or CostTicket.Status.PENDING
        for value, label in self.lookup_choices:
            yield {
                "selected": current == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }


@admin.register(CostTicket)
class CostTicketAdmin(ReadOnlyOrgScopedAdmin):
    department_path = "department"
    list_display = [
        "ticket_id",
        "department",
        "consumer_group",
        "user_ref",
        "model",
        "estimate_column",
        "status",
        "created_at",
        "expires_at",
        "decided_by",
    ]
    list_filter = [PendingFirst, "department"]
    list_select_related = ["department", "consumer_group"]
    search_fields = ["=ticket_id", "=request_id", "user_ref"]
    actions = ["approve", "deny"]

    @admin.display(description="Estimate", ordering="estimate")
    def estimate_column(self, obj):
        return display.amount(obj.estimate, obj.currency)

    def has_decide_permission(self, request):
        scope = request_scope(request)
        return scope.superuser or (scope.role in DECIDING_ROLES and not scope.is_empty)

    @admin.action(description="Approve selected cost tickets", permissions=["decide"])
    @audited_by_service
    def approve(self, request, queryset):
        self._decide(request, queryset, services.ticket_approve, "approved")

    @admin.action(description="Deny selected cost tickets", permissions=["decide"])
    @audited_by_service
    def deny(self, request, queryset):
        self._decide(request, queryset, services.ticket_deny, "denied")

    def _decide(self, request, queryset, decide, done):
        actor = actor_of(request)
        for ticket in queryset.select_related("organization"):
            try:
                decide(
                    organization=ticket.organization,
                    ticket_id=ticket.ticket_id,
                    actor=actor,
                    via="admin",
                )
            except ApplicationError as exc:
                self.message_user(request, f"{ticket}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{ticket}: {done}", messages.SUCCESS)


@admin.register(CostTicketPolicy)
class CostTicketPolicyAdmin(ServiceAdmin):
    """The `cost_tickets` setting: the organization's row (no consumer group) and groups' own;
    written through wallets/tickets/policy.py like the config file writes it."""

    list_display = ["applies_to", "mode", "wait_seconds"]
    list_select_related = ["consumer_group"]
    fields = ["organization", "consumer_group", "mode", "wait_seconds"]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["organization", "consumer_group"] if obj is not None else []
        return [*super().get_readonly_fields(request, obj), *fixed]

    @admin.display(description="Applies to", ordering="consumer_group__name")
    def applies_to(self, obj):
        return obj.consumer_group.name if obj.consumer_group_id else "(organization default)"

    def service_save(self, request, form, change):
        data, instance = form.cleaned_data, form.instance
        policy, _ = ticket_policy_set(
            organization=instance.organization if change else data["organization"],
            consumer_group=instance.consumer_group if change else data.get("consumer_group"),
            mode=data["mode"],
            wait_seconds=data.get("wait_seconds") or 0,
            actor=actor_of(request),
            via="admin",
        )
        return policy

    def service_delete(self, request, obj):
        ticket_policy_delete(policy=obj, actor=actor_of(request), via="admin")
