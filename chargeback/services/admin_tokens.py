"""Admin tokens of the management API: the raw token is shown once and stored hashed."""

from django.db import transaction

from chargeback.audit import audit_changes, audit_record, audited_delete
from chargeback.errors import ApplicationError, Conflict
from chargeback.keys import generate_key, hash_key, key_prefix
from chargeback.models import AdminToken, Organization


def admin_token_create(
    *,
    organization: Organization,
    name: str = "admin token",
    raw: str | None = None,
    actor: str = "system",
    via: str = "system",
) -> tuple[AdminToken, str]:
    """A new management-API token. The raw token is returned this once and never stored."""
    raw = raw or generate_key("admin")
    if len(raw) < 16:
        raise ApplicationError("an admin token must be at least 16 characters")
    with transaction.atomic():
        if AdminToken.objects.filter(token_hash=hash_key(raw)).exists():
            raise Conflict("this admin token cannot be used; choose another")
        token = AdminToken.objects.create(
            organization=organization,
            name=name,
            token_prefix=key_prefix(raw),
            token_hash=hash_key(raw),
        )
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="admin_token.create",
            obj=token,
            after={"name": name, "token_prefix": token.token_prefix},
        )
    return token, raw


def admin_token_update(
    *,
    token: AdminToken,
    actor: str,
    via: str,
    name: str | None = None,
    is_active: bool | None = None,
) -> AdminToken:
    """Rename a token or switch it off (a switched-off token is refused at once) or on."""
    changes = {k: v for k, v in {"name": name, "is_active": is_active}.items() if v is not None}
    if "name" in changes and not str(changes["name"]).strip():
        raise ApplicationError("must not be empty", field="name")
    with transaction.atomic():
        token = AdminToken.objects.select_for_update().get(pk=token.pk)
        audit_changes(
            token,
            changes,
            organization=token.organization,
            actor=actor,
            via=via,
            action="admin_token.update",
        )
    return token


def admin_token_delete(*, token: AdminToken, actor: str, via: str) -> None:
    audited_delete(
        token,
        actor=actor,
        via=via,
        action="admin_token.delete",
        before={"name": token.name, "token_prefix": token.token_prefix},
    )
