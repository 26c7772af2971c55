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

from dataclasses import dataclass
from functools import wraps

from django.contrib import admin
from django.contrib.admin.filters import RelatedFieldListFilter, SimpleListFilter
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_user_model
from django.db import router, transaction
from django.db.models import Q
from django.http import Http404

from chargeback.audit import audit_record
from chargeback.models import Membership, Organization

SECRET_FIELD_SUFFIXES = ("_hash",)
TIMESTAMP_FIELDS = ("created_at", "updated_at", "imported_at")


@dataclass(frozen=True)
class Scope:
    """What one request may see. `department_ids` None means all of the organization's."""

    superuser: bool
    organization_id: int | None = None
    department_ids: frozenset | None = None
    role: str | None = None

    @property
    def is_empty(self) -> bool:
        return not self.superuser and self.organization_id is None


def request_scope(request) -> Scope:
    """The caller's scope, read once per request (at most two queries)."""
    cached = getattr(request, "_kt_scope", None)
    if cached is not None:
        return cached
    user = request.user
    if not user.is_authenticated or not user.is_active:
        scope = Scope(superuser=False)
    elif user.is_superuser:
        scope = Scope(superuser=True)
    else:
        membership = Membership.objects.filter(user=user).first()
        if membership is None:
            scope = Scope(superuser=False)
        else:
            departments = None
            if membership.role == Membership.Role.BUDGET_OWNER:
                departments = frozenset(membership.departments.values_list("pk", flat=True))
            scope = Scope(
                superuser=False,
                organization_id=membership.organization_id,
                department_ids=departments,
                role=membership.role,
            )
    request._kt_scope = scope
    return scope


def request_organization(request) -> Organization | None:
    """The organization a screen is about: the member's, or for a superuser `?organization=<id>`
    (else the first one)."""
    scope = request_scope(request)
    if scope.organization_id is not None:
        return Organization.objects.get(pk=scope.organization_id)
    if not scope.superuser:
        return None
    wanted = request.GET.get("organization")
    qs = Organization.objects.order_by("pk")
    if wanted and wanted.isdigit():
        return qs.filter(pk=int(wanted)).first()
    return qs.first()


def actor_of(request) -> str:
    return request.user.get_username()


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


def snapshot(obj) -> dict:
    """A JSON-able picture of a row for the audit log; secret digests are left out."""
    data = {}
    for field in obj._meta.concrete_fields:
        if field.name.endswith(SECRET_FIELD_SUFFIXES):
            continue
        data[field.attname] = field.value_from_object(obj)
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            data[field.name] = sorted(field.value_from_object(obj).__iter__(), key=str)
            data[field.name] = [getattr(o, "pk", o) for o in data[field.name]]
    return data


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


def audit_admin_change(request, *, obj, action, before=None, after=None):
    """One AuditLog row for a change made through the admin (call inside its transaction)."""
    organization = admin_org_of(obj, request)
    audit_record(
        organization=organization,
        actor=actor_of(request),
        via="admin",
        action=action,
        obj=obj,
        before=before,
        after=after,
    )


def admin_org_of(obj, request):
    if isinstance(obj, Organization):
        return obj
    org_id = getattr(obj, "organization_id", None)
    if org_id is None:  # shared rows (the default price catalog): the actor's organization
        org_id = request_scope(request).organization_id
    return Organization(pk=org_id) if org_id else None


class AuditedAdminMixin:
    """Writes an AuditLog row for every save, delete and action, inside its transaction."""

    def _audit_label(self):
        return self.model._meta.label_lower.split(".", 1)[1]

    def save_model(self, request, obj, form, change):
        before = None
        if change:
            current = type(obj)._default_manager.filter(pk=obj.pk).first()
            before = snapshot(current) if current is not None else None
        super().save_model(request, obj, form, change)
        # Written in save_related (after many-to-many data is saved), same transaction.
        obj._kt_audit = (before, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        pending = getattr(obj, "_kt_audit", None)
        if pending is None:
            return
        before, was_change = pending
        del obj._kt_audit
        audit_admin_change(
            request,
            obj=obj,
            action=f"{self._audit_label()}.{'change' if was_change else 'add'}",
            before=before,
            after=snapshot(obj),
        )

    def delete_model(self, request, obj):
        before = snapshot(obj)
        with transaction.atomic(using=router.db_for_write(self.model)):
            audit_admin_change(
                request, obj=obj, action=f"{self._audit_label()}.delete", before=before
            )
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic(using=router.db_for_write(self.model)):
            for obj in queryset:
                audit_admin_change(
                    request, obj=obj, action=f"{self._audit_label()}.delete", before=snapshot(obj)
                )
            super().delete_queryset(request, queryset)

    def get_actions(self, request):
        actions = super().get_actions(request)
        wrapped = {}
        for name, (func, action_name, description) in actions.items():
            if name != "delete_selected":  # bulk delete is audited in delete_queryset
                func = self._audited_action(func, action_name)
            wrapped[name] = (func, action_name, description)
        return wrapped

    def _audited_action(self, func, action_name):
        label = self._audit_label()

        @wraps(func)
        def run(modeladmin, request, queryset):
            with transaction.atomic(using=router.db_for_write(modeladmin.model)):
                objects = list(queryset)
                response = func(modeladmin, request, queryset)
                # An action that answers with a page (a confirmation form) changed nothing yet.
                if response is None:
                    for obj in objects:
                        audit_admin_change(request, obj=obj, action=f"{label}.action.{action_name}")
            return response

        return run


class OrgScopedAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Base of every model admin. Set `org_path` (lookup to the Organization, "pk" for the
    Organization itself), `department_path` (lookup to the Department; None: budget owners see
    none of these rows), `shared_when_org_null` (rows without organization are a shared catalog
    everyone may read) and `read_only` (nobody, not even a superuser, adds, edits or deletes)."""

    org_path = "organization"
    department_path: str | None = None
    shared_when_org_null = False
    read_only = False

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

    # --- choices -------------------------------------------------------------------------------

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs.setdefault("queryset", related_queryset(request, db_field.remote_field.model))
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

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if request_scope(request).superuser:
            return fields
        return [f for f in fields if f != "organization"]

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        names = {f.name for f in self.model._meta.concrete_fields}
        if not request_scope(request).superuser and "organization" in names:
            exclude.append("organization")  # set from the membership, never chosen
        return exclude or None


class ReadOnlyOrgScopedAdmin(OrgScopedAdmin):
    """Append-only records: viewable, never added, edited or deleted here (also by superusers)."""

    read_only = True

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


__all__ = [
    "InputFilter",
    "OrgScopedAdmin",
    "ReadOnlyOrgScopedAdmin",
    "Scope",
    "ScopedRelatedFieldListFilter",
    "actor_of",
    "related_queryset",
    "request_organization",
    "request_scope",
]
