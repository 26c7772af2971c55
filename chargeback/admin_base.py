"""The one base class of every model admin: organization scope and the audit trail.

Restriction lives in the queryset (as in NetBox), so every way into a row goes through it:
changelists, change/delete/history views (a row outside the scope is a 404, never a redirect
that confirms it exists), foreign-key and many-to-many choices, list-filter choices,
autocomplete (which asks the *related* model's admin for its queryset) and actions (which
filter the selected ids through the changelist queryset). Superusers see everything; staff
see their Membership's organization; budget owners only their departments' rows.

Every change made through the admin (save, delete, bulk delete, actions) writes an AuditLog
row in the same transaction as the change.
"""

from django.contrib import admin
from django.contrib.admin.filters import RelatedFieldListFilter, SimpleListFilter
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import Q
from django.http import Http404

from chargeback.admin_audit import AuditedAdminMixin, audit_admin_change, snapshot
from chargeback.admin_fields import AmountInput, EmailListField
from chargeback.admin_scope import (
    Scope,
    actor_of,
    request_organization,
    request_scope,
)
from chargeback.models import Organization
from chargeback.money import AmountField

TIMESTAMP_FIELDS = ("created_at", "updated_at", "imported_at")


def related_queryset(request, model):
    """Rows of `model` the caller may pick or see as a choice."""
    scope = request_scope(request)
    qs = model._default_manager.all()
    if scope.superuser:
        return qs
    model_admin = admin.site._registry.get(model)
    if isinstance(model_admin, OrgScopedAdmin):
        return model_admin.scope_queryset(qs, scope)
    if model is get_user_model():
        # Only the organization's own staff; other people's accounts are not choices.
        return qs.filter(membership__organization_id=scope.organization_id)
    field_names = {f.name for f in model._meta.get_fields()}
    if "organization" in field_names:
        return qs.filter(organization_id=scope.organization_id)
    return qs.none()


class ScopedRelatedFieldListFilter(RelatedFieldListFilter):
    """A foreign-key filter whose choices are only the rows the caller may see."""

    def field_choices(self, field, request, model_admin):
        qs = related_queryset(request, field.remote_field.model)
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            qs = qs.order_by(*ordering)
        return [(obj.pk, str(obj)) for obj in qs]


class InputFilter(SimpleListFilter):
    """A free-text exact-match filter, for columns with too many values to list (end users)."""

    template = "admin/kt_input_filter.html"
    field_name = ""

    def lookups(self, request, model_admin):
        return [("", "")]  # Django shows a filter only when it has choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field_name: self.value()})
        return queryset

    def choices(self, changelist):
        query = changelist.get_filters_params()
        query.pop(self.parameter_name, None)
        yield {
            "parameter_name": self.parameter_name,
            "value": self.value() or "",
            "others": [(k, v) for k, vals in query.items() for v in vals],
            "clear_url": changelist.get_query_string(remove=[self.parameter_name]),
        }


class OrgScopedAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Base of every model admin. Set `org_path` (lookup to the Organization, "pk" for the
    Organization itself), `department_path` (lookup to the Department; None: budget owners see
    none of these rows), `shared_when_org_null` (rows without organization are a shared catalog
    everyone may read) and `read_only` (nobody, not even a superuser, adds, edits or deletes)."""

    org_path = "organization"
    department_path: str | None = None
    shared_when_org_null = False
    read_only = False
    # A bare host typed into a URL field means https (Django 6's default, asked for today).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    # --- rows --------------------------------------------------------------------------------

    def scope_queryset(self, qs, scope: Scope):
        if scope.superuser:
            return qs
        if scope.organization_id is None:
            return qs.none()
        where = Q(**{self.org_path: scope.organization_id})
        if self.shared_when_org_null:
            where |= Q(**{f"{self.org_path}__isnull": True})
        qs = qs.filter(where)
        if scope.department_ids is not None:
            if self.department_path is None:
                return qs.none()
            qs = qs.filter(**{f"{self.department_path}__in": scope.department_ids})
        return qs

    def get_queryset(self, request):
        return self.scope_queryset(super().get_queryset(request), request_scope(request))

    def get_object(self, request, object_id, from_field=None):
        # Out of scope and nonexistent look the same: a 404 that confirms nothing, raised before
        # any permission check (a 403 for a row of another tenant would confirm it exists).
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} matches the given query.")
        return obj

    def is_shared_row(self, obj) -> bool:
        return self.shared_when_org_null and getattr(obj, "organization_id", 1) is None

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "owner_emails":  # a JSON list, edited as people write addresses
            return EmailListField(required=not db_field.blank, label=db_field.verbose_name)
        if isinstance(db_field, AmountField):
            kwargs.setdefault("widget", AmountInput(attrs={"step": "any"}))
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    # --- choices -------------------------------------------------------------------------------

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        scope = request_scope(request)
        kwargs.setdefault("queryset", related_queryset(request, db_field.remote_field.model))
        if db_field.remote_field.model is Organization and not scope.superuser:
            # Staff work in their one organization: it is the only choice, and a required one
            # (staff never create shared rows, such as default-catalog prices). Kept in the form
            # so that uniqueness per organization is validated as a form error.
            kwargs.update(required=True, empty_label=None, initial=scope.organization_id)
        elif db_field.remote_field.model is Organization and scope.organization_id is not None:
            # A superuser who is a member (the demo's admin) starts with their organization.
            kwargs.setdefault("initial", scope.organization_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs.setdefault("queryset", related_queryset(request, db_field.remote_field.model))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_list_filter(self, request):
        filters = []
        for spec in super().get_list_filter(request):
            if isinstance(spec, str):
                field = get_fields_from_path(self.model, spec)[-1]
                if field.is_relation:
                    spec = (spec, ScopedRelatedFieldListFilter)
            filters.append(spec)
        if request_scope(request).superuser and self.org_path == "organization":
            filters.insert(0, ("organization", ScopedRelatedFieldListFilter))
        return filters

    # --- permissions -------------------------------------------------------------------------------

    def _in_scope(self, request):
        return not request_scope(request).is_empty

    def has_module_permission(self, request):
        return self._in_scope(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return self._in_scope(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return (
            not self.read_only and self._in_scope(request) and super().has_add_permission(request)
        )

    def has_change_permission(self, request, obj=None):
        if self.read_only or not self._in_scope(request):
            return False
        if obj is not None and self.is_shared_row(obj) and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if self.read_only or not self._in_scope(request):
            return False
        if obj is not None and self.is_shared_row(obj) and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        # A new row of a non-superuser always belongs to the member's organization.
        scope = request_scope(request)
        if (
            not change
            and not scope.superuser
            and self.org_path == "organization"
            and getattr(obj, "organization_id", None) is None
        ):
            obj.organization_id = scope.organization_id
        super().save_model(request, obj, form, change)

    def get_readonly_fields(self, request, obj=None):
        # Timestamps record when something happened; nobody types them.
        readonly = list(super().get_readonly_fields(request, obj))
        names = {f.name for f in self.model._meta.concrete_fields}
        return readonly + [f for f in TIMESTAMP_FIELDS if f in names and f not in readonly]


class ReadOnlyOrgScopedAdmin(OrgScopedAdmin):
    """Append-only records: viewable, never added, edited or deleted here (also by superusers)."""

    read_only = True

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


__all__ = [
    "AuditedAdminMixin",
    "InputFilter",
    "OrgScopedAdmin",
    "ReadOnlyOrgScopedAdmin",
    "Scope",
    "ScopedRelatedFieldListFilter",
    "actor_of",
    "audit_admin_change",
    "related_queryset",
    "request_organization",
    "request_scope",
    "snapshot",
]
