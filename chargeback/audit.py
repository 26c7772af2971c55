"""The audit log writer. Call it inside the transaction that makes the change."""

import json

from django.core.serializers.json import DjangoJSONEncoder

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
