"""Consumer-group key rotation: a new key at once, the old one honoured for a grace period."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError
from chargeback.keys import generate_key, hash_key, key_prefix
from chargeback.models import ConsumerGroup


def consumer_group_rotate_key(
    *, group: ConsumerGroup, grace_seconds: int, actor: str, via: str
) -> str:
    """Give `group` a new random key and return it in clear: the only time it is ever seen.

    The old key's digest moves to `previous_key_hash` and keeps authenticating until
    `previous_key_expires_at` (now + grace); a key that was itself still in its grace period is
    dropped at once. Locks the group row, so two rotations cannot both keep "the old key".
    Writes an audit row (prefixes only, never digests) in the same transaction.
    """
    if grace_seconds < 0:
        raise ApplicationError("grace_seconds must not be negative")
    raw = generate_key("cg")
    now = timezone.now()
    with transaction.atomic():
        group = ConsumerGroup.objects.select_for_update().get(pk=group.pk)
        old_prefix = group.key_prefix
        group.previous_key_hash = group.key_hash if grace_seconds else ""
        group.previous_key_expires_at = (
            now + timedelta(seconds=grace_seconds) if grace_seconds else None
        )
        group.key_hash = hash_key(raw)
        group.key_prefix = key_prefix(raw)
        # The key no longer comes from the environment: the database now holds its digest.
        group.key_env_ref = ""
        group.save(
            update_fields=[
                "previous_key_hash",
                "previous_key_expires_at",
                "key_hash",
                "key_prefix",
                "key_env_ref",
                "updated_at",
            ]
        )
        audit_record(
            organization=group.organization,
            actor=actor,
            via=via,
            action="consumer_group.rotate_key",
            obj=group,
            before={"key_prefix": old_prefix},
            after={
                "key_prefix": group.key_prefix,
                "previous_key_expires_at": group.previous_key_expires_at,
            },
        )
    return raw
