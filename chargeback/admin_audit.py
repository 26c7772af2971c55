"""The admin's audit trail: every save, delete and action writes an AuditLog row in the same
transaction as the change."""

from functools import wraps

from django.db import router, transaction

from chargeback.admin_scope import actor_of, request_scope
from chargeback.audit import audit_record
from chargeback.models import Organization

SECRET_FIELD_SUFFIXES = ("_hash", "ciphertext")


def audited_by_service(func):
    """Mark an admin action whose service writes the audit rows itself (one per real change,
    none for a refused one), so the generic per-object action row is not added."""
    func.audited_by_service = True
    return func


def snapshot(obj) -> dict:
    """A JSON-able picture of a row for the audit log; secret digests are left out."""
    data = {}
    for field in obj._meta.concrete_fields:
        if field.name.endswith(SECRET_FIELD_SUFFIXES):
            continue
        data[field.attname] = field.value_from_object(obj)
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            data[field.name] = sorted(related.pk for related in field.value_from_object(obj))
    return data


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
    scope = request_scope(request)
    if org_id is None and not scope.superuser:
        # Shared rows (the default price catalog): the member's organization; a superuser's
        # change of them is the platform's, not one tenant's.
        org_id = scope.organization_id
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
            # Bulk delete is audited in delete_queryset; service-backed actions by the service.
            if name != "delete_selected" and not getattr(func, "audited_by_service", False):
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
