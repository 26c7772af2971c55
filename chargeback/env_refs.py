"""Which server environment variables an organization's config may name.

`secret_key_ref: {env: NAME}` (a target's provider key) and `api_key_ref: {env: NAME}` (a
group's key) read the environment of the server. On a shared server that environment holds the
keys of every tenant and the platform's own secrets, so a name is accepted only when the
platform operator allows it for that organization: `Organization.env_refs_allowed`, exact names
or `PREFIX_*` patterns, set with `manage.py org_env_refs` or by a superuser in the admin, never
by the tenant. An empty list (the default) allows nothing. The platform's own variables are
refused even when a pattern matches them.

The check comes before the variable is read, so a refused name tells nothing about whether the
variable exists.
"""

import os

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError
from chargeback.models import ENV_NAME_RE, Organization, validate_env_ref_patterns

PLATFORM_VARIABLES = frozenset(
    {
        "SECRET_KEY",
        "KT_SECRETS_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "EMAIL_URL",
        "POSTGRES_PASSWORD",
        "KT_DEMO_ADMIN_PASSWORD",
    }
)
HINTS = {
    "secret_env": "store the key as a provider secret (`kt provider-secrets set NAME`) and use "
    "secret_key_ref: {secret: NAME}",
    "key_env_ref": "give the key as api_key instead",
}


def env_ref_allowed(patterns, name: str) -> bool:
    if not name or name in PLATFORM_VARIABLES or not ENV_NAME_RE.match(name):
        return False
    for pattern in patterns or ():
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False


def allowed_text(patterns) -> str:
    if not patterns:
        return "the platform operator allows no environment variable for this organization"
    return "allowed for this organization: " + ", ".join(patterns)


def env_ref_check(*, organization: Organization, name: str, field: str) -> None:
    """Raise ApplicationError (naming `field`) unless the organization may name this variable."""
    if env_ref_allowed(organization.env_refs_allowed, name):
        return
    raise ApplicationError(
        f"the environment variable {name} may not be used by this organization "
        f"({allowed_text(organization.env_refs_allowed)}); {HINTS.get(field, '')}".rstrip("; "),
        field=field,
    )


def env_ref_read(*, organization: Organization, name: str, field: str) -> str:
    """The variable's value ('' when unset), after checking the organization may read it."""
    env_ref_check(organization=organization, name=name, field=field)
    return os.environ.get(name, "")


def organization_env_refs_set(
    *, organization: Organization, patterns: list[str], actor: str, via: str
) -> bool:
    """The operator's allow-list of one organization (not a tenant operation: superusers,
    `manage.py org_env_refs`, the demo). Audited; returns whether it changed."""
    patterns = sorted(dict.fromkeys(patterns))
    validate_env_ref_patterns(patterns)
    before = list(organization.env_refs_allowed or [])
    if before == patterns:
        return False
    organization.env_refs_allowed = patterns
    organization.save(update_fields=["env_refs_allowed"])
    audit_record(
        organization=organization,
        actor=actor,
        via=via,
        action="organization.env_refs_allowed",
        obj=organization,
        before={"env_refs_allowed": before},
        after={"env_refs_allowed": patterns},
    )
    return True
