"""The audit log writer. Call it inside the transaction that makes the change."""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from chargeback.models import AuditLog, Organization


def _plain(value):
    return None if value is None else json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def audit_record(
    *,
    organization: Organization,
    actor: str,
    via: str,
    action: str,
    obj=None,
    object_type: str = "",
    object_id: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditLog:
    if obj is not None:
        object_type = object_type or obj._meta.label
        object_id = object_id or str(obj.pk)
    return AuditLog.objects.create(
        organization=organization,
        actor=actor or "system",
        via=via,
        action=action,
        object_type=object_type,
        object_id=object_id,
        before=_plain(before),
        after=_plain(after),
    )


def audit_changes(
    obj, changes: dict, *, organization, actor: str, via: str, action: str, check=None
) -> list[str]:
    """The write of a service that changes some fields of one row: set on `obj` (its row locked
    by the caller) the fields of `changes` whose value differs, run `check(obj, before)` (the
    service's rules: raises to refuse), save only those fields and write one audit row with
    their values before and after. Returns the names changed; [] writes nothing at all."""
    before = {field: getattr(obj, field) for field in changes}
    changed = [field for field, value in changes.items() if before[field] != value]
    if not changed:
        return []
    for field in changed:
        setattr(obj, field, changes[field])
    if check is not None:
        check(obj, before)
    obj.save(update_fields=changed)
    audit_record(
        organization=organization,
        actor=actor,
        via=via,
        action=action,
        obj=obj,
        before={field: before[field] for field in changed},
        after={field: changes[field] for field in changed},
    )
    return changed


def audited_delete(obj, *, actor: str, via: str, action: str, before: dict) -> None:
    """The write of a service that deletes one row: the audit row (`before`: what the row said)
    and the delete, in one transaction."""
    with transaction.atomic():
        audit_record(
            organization=obj.organization,
            actor=actor,
            via=via,
            action=action,
            obj=obj,
            before=before,
        )
        obj.delete()
