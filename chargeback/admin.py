"""Admin for tenancy: organizations, consumer groups (key rotation), provider targets and secrets (chargeback/admin_providers.py), admin tokens,
staff memberships and the audit log."""

from django.conf import settings
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from chargeback import (
    admin_providers,  # noqa: F401  (registers the target and secret admins)
    services,
)
from chargeback.admin_audit import audited_by_service
from chargeback.admin_base import (
    ReadOnlyOrgScopedAdmin,
    actor_of,
)
from chargeback.admin_services import ServiceAdmin
from chargeback.env_refs import organization_env_refs_set
from chargeback.models import (
    AdminToken,
    AuditLog,
    ConsumerGroup,
    Membership,
    Organization,
)
from chargeback.rotation import consumer_group_rotate_key
from chargeback.services import consumer_group_upsert


@admin.register(Organization)
class OrganizationAdmin(ServiceAdmin):
    org_path = "pk"
    list_display = [
        "name",
        "slug",
        "time_zone",
        "currency",
        "wallet_enforcement",
        "rate_limits_unavailable",
    ]
    search_fields = ["name", "slug"]
    fields = [*services.ORGANIZATION_EDITABLE, "rate_limit_defaults", "env_refs_allowed"]

    def has_add_permission(self, request):
        return request.user.is_superuser  # tenants are created by the platform

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def service_save(self, request, form, change):
        data, actor = form.cleaned_data, actor_of(request)
        if not change:
            return services.organization_create(
                name=data["name"],
                slug=data["slug"],
                time_zone=data["time_zone"],
                currency=data["currency"],
                actor=actor,
                via="admin",
            )
        organization = form.instance
        services.organization_update(
            organization=organization,
            actor=actor,
            via="admin",
            **{f: data[f] for f in services.ORGANIZATION_EDITABLE if f in data},
        )
        if request.user.is_superuser and "env_refs_allowed" in data:  # the operator's list
            organization_env_refs_set(
                organization=organization,
                patterns=data["env_refs_allowed"] or [],
                actor=actor,
                via="admin",
            )
        return organization

    def service_delete(self, request, obj):
        services.organization_delete(organization=obj, actor=actor_of(request), via="admin")

    def get_readonly_fields(self, request, obj=None):
        # The defaults come from the config file (`rate_limit_defaults`), like the groups' limits.
        readonly = [*super().get_readonly_fields(request, obj), "rate_limit_defaults"]
        # The operator's allow-list of server variables: never the tenant's to change.
        return readonly if request.user.is_superuser else [*readonly, "env_refs_allowed"]


@admin.register(ConsumerGroup)
class ConsumerGroupAdmin(ServiceAdmin):
    department_path = "department"
    list_display = [
        "name",
        "department",
        "key_prefix_column",
        "is_active",
        "previous_key_expires_at",
    ]
    list_filter = ["department", "is_active"]
    list_select_related = ["department"]
    search_fields = ["name", "key_prefix"]
    autocomplete_fields = ["department"]
    # The digest of a key is never shown, not even read-only; the prefix identifies it.
    fields = [
        "organization",
        "name",
        "department",
        "key_prefix",
        "key_env_ref",
        "previous_key_expires_at",
        "is_active",
        "allowed_models",
        "rpm_limit",
        "tpm_limit",
        "tpd_limit",
        "parallel_limit",
        "user_rate_limits",
    ]
    readonly_fields = ["key_prefix", "key_env_ref", "previous_key_expires_at"]
    actions = ["rotate_key"]

    def has_add_permission(self, request):
        return False  # groups come from the config file (`kt config apply`), which issues keys

    def get_readonly_fields(self, request, obj=None):
        # The name is how the config file finds the group; the key never changes here.
        return [*super().get_readonly_fields(request, obj), "organization", "name"]

    def service_save(self, request, form, change):
        # The config file's service, keeping the group's key (the admin never sees keys).
        group, data = form.instance, form.cleaned_data
        group, _, _ = consumer_group_upsert(
            organization=group.organization,
            name=group.name,
            raw_key=None,
            department=data["department"],
            allowed_models=data["allowed_models"],
            rpm_limit=data["rpm_limit"],
            tpm_limit=data["tpm_limit"],
            tpd_limit=data["tpd_limit"],
            parallel_limit=data["parallel_limit"],
            user_rate_limits=data["user_rate_limits"],
            is_active=data["is_active"],
            actor=actor_of(request),
            via="admin",
        )
        return group

    @admin.display(description="Key", ordering="key_prefix")
    def key_prefix_column(self, obj):
        return f"{obj.key_prefix}…"

    @admin.action(description="Rotate the key of the selected groups", permissions=["change"])
    @audited_by_service
    def rotate_key(self, request, queryset):
        grace = settings.KT_KEY_ROTATION_GRACE_SECONDS
        keys = [
            (
                group,
                consumer_group_rotate_key(
                    group=group, grace_seconds=grace, actor=actor_of(request), via="admin"
                ),
            )
            for group in queryset
        ]
        if not keys:
            self.message_user(request, "No group was selected.", messages.WARNING)
            return None
        # The new keys exist only in this response: never stored, never cached, never logged.
        response = TemplateResponse(
            request,
            "admin/chargeback/consumergroup/rotated_keys.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "New consumer-group keys",
                "keys": keys,
                "grace_seconds": grace,
            },
        )
        response["Cache-Control"] = "no-store"
        return response


@admin.register(AdminToken)
class AdminTokenAdmin(ServiceAdmin):
    list_display = ["name", "token_prefix_column", "is_active", "created_at", "last_used_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "token_prefix"]
    fields = ["organization", "name", "token_prefix", "is_active", "created_at", "last_used_at"]
    readonly_fields = ["organization", "token_prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False  # tokens are issued by the CLI, which shows the raw token once

    @admin.display(description="Token", ordering="token_prefix")
    def token_prefix_column(self, obj):
        return f"{obj.token_prefix}…"

    def service_save(self, request, form, change):
        data = form.cleaned_data
        return services.admin_token_update(
            token=form.instance,
            actor=actor_of(request),
            via="admin",
            name=data["name"],
            is_active=data["is_active"],
        )

    def service_delete(self, request, obj):
        services.admin_token_delete(token=obj, actor=actor_of(request), via="admin")


@admin.register(Membership)
class MembershipAdmin(ServiceAdmin):
    """Who is staff of the organization and in which role (role = Django group "kt:<role>")."""

    list_display = ["user", "role", "departments_column"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email"]
    filter_horizontal = ["departments"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user").prefetch_related("departments")

    @admin.display(description="Departments (budget owners)")
    def departments_column(self, obj):
        return ", ".join(d.team_id for d in obj.departments.all())

    def has_add_permission(self, request):
        # Only existing staff of the organization (or a superuser) can be picked as the user.
        return request.user.is_superuser

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ["organization", "user"]
        return [] if request.user.is_superuser else ["user"]

    def service_save(self, request, form, change):
        data = form.cleaned_data
        return services.membership_save(
            organization=data.get("organization") or form.instance.organization,
            user=data.get("user") or form.instance.user,
            role=data["role"],
            departments=list(data.get("departments") or []),
            actor=actor_of(request),
            via="admin",
        )

    def service_delete(self, request, obj):
        services.membership_delete(membership=obj, actor=actor_of(request), via="admin")


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyOrgScopedAdmin):
    list_display = ["created_at", "actor", "via", "action", "object_type", "object_id"]
    list_filter = ["action", "via", "actor", "created_at"]
    search_fields = ["=object_id", "actor", "action"]
    date_hierarchy = "created_at"
    show_full_result_count = False
