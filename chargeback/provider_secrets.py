"""Provider secrets: an organization's provider API keys, stored encrypted (chargeback/secretbox.py).

A value is entered once (API, admin, `kt`) and never returned: reads show the name, the last
characters (`hint`), when it was set and rotated, and which targets use it. Setting a name that
exists rotates it (a new value; the gateway uses it within KT_KEY_CACHE_SECONDS). Every lookup
is by (organization, name): another organization's secret is indistinguishable from none.
"""

import re

from django.db import transaction
from django.db.models import Prefetch, RestrictedError
from django.utils import timezone

from chargeback import secretbox
from chargeback.audit import audit_record
from chargeback.errors import ApplicationError, Conflict, NotFound
from chargeback.models import Organization, ProviderSecret, ProviderTarget

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
MAX_VALUE_LENGTH = 4096
# Printable ASCII without spaces: a key goes into an HTTP header, where a line break would
# split it into headers of the caller's choosing.
VALUE_RE = re.compile(r"^[\x21-\x7e]+$")


def _state(secret: ProviderSecret) -> dict:
    # Never the value nor its ciphertext.
    return {"name": secret.name, "hint": secret.hint}


def provider_secret_value_clean(value) -> str:
    """The value as it will be stored (surrounding whitespace dropped), or ApplicationError."""
    value = value.strip() if isinstance(value, str) else ""
    if not value:
        raise ApplicationError("the secret's value must not be empty", field="value")
    if len(value) > MAX_VALUE_LENGTH or not VALUE_RE.match(value):
        raise ApplicationError(
            f"use at most {MAX_VALUE_LENGTH} printable characters, without spaces", field="value"
        )
    return value


def provider_secret_set(
    *, organization: Organization, name: str, value: str, actor: str, via: str
) -> tuple[ProviderSecret, bool]:
    """Store `value` encrypted as the organization's secret `name`; rotate it if it exists.
    Returns (secret, created). Raises ApplicationError for a bad name or value, NotConfigured when
    the server has no KT_SECRETS_KEY. The row is locked, so two rotations apply one by one."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ApplicationError("use 1-100 letters, digits, '-' and '_'", field="name")
    value = provider_secret_value_clean(value)
    token = secretbox.seal(organization_id=organization.pk, name=name, value=value)
    with transaction.atomic():
        secret = (
            ProviderSecret.objects.select_for_update()
            .filter(organization=organization, name=name)
            .first()
        )
        created = secret is None
        if created:
            secret = ProviderSecret(organization=organization, name=name)
        else:
            secret.rotated_at = timezone.now()
        secret.ciphertext = token
        secret.hint = secretbox.hint_of(value)
        secret.save()
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="provider_secret.create" if created else "provider_secret.rotate",
            obj=secret,
            after=_state(secret),
        )
    return secret, created


def provider_secret_delete(*, secret: ProviderSecret, actor: str, via: str) -> None:
    """Delete a secret nothing uses (Conflict naming the targets, or what else uses it)."""
    with transaction.atomic():
        users = list(
            ProviderTarget.objects.filter(secret=secret)
            .order_by("target_id")
            .values_list("target_id", flat=True)
        )
        if users:
            raise Conflict(
                f"provider secret {secret.name!r} is used by target(s) {', '.join(users)}; "
                "point them elsewhere first"
            )
        audit_record(
            organization=secret.organization,
            actor=actor,
            via=via,
            action="provider_secret.delete",
            obj=secret,
            before=_state(secret),
        )
        try:
            secret.delete()
        except RestrictedError as exc:  # used elsewhere, e.g. as a single sign-on client secret
            users = sorted({f"{obj._meta.verbose_name} {obj}" for obj in exc.restricted_objects})
            raise Conflict(
                f"provider secret {secret.name!r} is used by {', '.join(users)}; "
                "point it elsewhere first"
            ) from None


# --- selectors ---------------------------------------------------------------------------------


def provider_secrets_of(*, organization: Organization):
    """The organization's secrets with `users` (its targets) prefetched."""
    return ProviderSecret.objects.filter(organization=organization).prefetch_related(
        Prefetch("targets", queryset=ProviderTarget.objects.order_by("target_id"), to_attr="users")
    )


def provider_secret_get(*, organization: Organization, name: str) -> ProviderSecret:
    secret = provider_secrets_of(organization=organization).filter(name=name).first()
    if secret is None:
        raise NotFound(f"no provider secret {name!r}")
    return secret
