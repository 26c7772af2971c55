"""Provider targets: where the gateway sends an organization's calls, with which key.

Every write (config file, admin) goes through `target_upsert`, which refuses, before writing:
- an environment variable the operator does not allow for the organization (chargeback/env_refs.py);
- a stored secret that is not the organization's (looked up by name in the organization only);
- a `base_url` the gateway may not connect to (chargeback/upstream.py: https, public addresses,
  unless the operator allows a host, network or http). The gateway checks the address again
  on every new connection, so this check is for a clear message now, not the only defence.
"""

from chargeback import secretbox, upstream
from chargeback.audit import audit_record
from chargeback.env_refs import env_ref_check
from chargeback.errors import ApplicationError
from chargeback.models import Organization, ProviderSecret, ProviderTarget

# Django's URLValidator refuses host names without a dot (`http://ollama:11434/v1`, a compose
# service), which are exactly the self-hosted servers an operator may allow-list; the URL is
# checked by `target_check` (chargeback/upstream.py) instead.
URL_CHECKED_BY_CALLER = ["base_url"]


def target_check(
    *,
    organization: Organization,
    base_url: str = "",
    secret_env: str = "",
    secret_name: str = "",
) -> ProviderSecret | None:
    """Raise ApplicationError (field: `base_url`, `secret_env` or `secret_name`) for anything the
    organization may not configure; return the stored secret named, if any."""
    if secret_env and secret_name:
        raise ApplicationError(
            "give either an environment variable or a secret", field="secret_name"
        )
    if secret_env:
        env_ref_check(organization=organization, name=secret_env, field="secret_env")
    secret = None
    if secret_name:
        secret = ProviderSecret.objects.filter(organization=organization, name=secret_name).first()
        if secret is None:
            raise ApplicationError(
                f"this organization has no provider secret {secret_name!r}; store it first "
                f"(`kt provider-secrets set {secret_name}`, POST /v1/provider-secrets or the admin)",
                field="secret_name",
            )
        if not secretbox.configured():
            raise ApplicationError(secretbox.MISSING_KEY, field="secret_name")
    if base_url:
        problem = upstream.policy().url_problem(base_url)
        if problem:
            raise ApplicationError(f"{base_url} {problem}", field="base_url")
    return secret


def _target_state(target: ProviderTarget) -> dict:
    return {
        "provider": target.provider,
        "base_url": target.base_url,
        "secret_env": target.secret_env,
        "secret": target.secret.name if target.secret_id else "",
        "served_models": list(target.served_models),
        "options": dict(target.options),
    }


def target_upsert(
    *,
    organization: Organization,
    target_id: str,
    provider: str,
    base_url: str = "",
    secret_env: str = "",
    secret_name: str = "",
    served_models: list[str] | None = None,
    options: dict | None = None,
    actor: str,
    via: str,
) -> tuple[ProviderTarget, bool, list[str]]:
    """Create or update one target; return (target, created, changed field names). Raises
    ApplicationError for a key source or base URL the organization may not use (target_check)."""
    secret = target_check(
        organization=organization,
        base_url=base_url or "",
        secret_env=secret_env or "",
        secret_name=secret_name or "",
    )
    wanted = {
        "provider": provider,
        "base_url": base_url or "",
        "secret_env": secret_env or "",
        "secret": secret,
        "served_models": list(served_models or []),
        "options": dict(options or {}),
    }
    target = (
        ProviderTarget.objects.select_related("secret")
        .filter(organization=organization, target_id=target_id)
        .first()
    )
    if target is None:
        target = ProviderTarget(organization=organization, target_id=target_id, **wanted)
        target.full_clean(exclude=URL_CHECKED_BY_CALLER)
        target.save()
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="target.create",
            obj=target,
            after={"target_id": target_id, **_target_state(target)},
        )
        return target, True, []
    before = _target_state(target)
    comparable = {**wanted, "secret": secret.name if secret else ""}
    changed = [field for field, value in comparable.items() if before[field] != value]
    if changed:
        for field in changed:
            setattr(target, field, wanted[field])
        target.full_clean(exclude=URL_CHECKED_BY_CALLER)
        target.save(update_fields=changed)
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="target.update",
            obj=target,
            before={field: before[field] for field in changed},
            after={field: comparable[field] for field in changed},
        )
    return target, False, changed


def target_delete(*, target: ProviderTarget, actor: str, via: str) -> None:
    """Usage events keep the target id as text, so deleting a target loses no history."""
    audit_record(
        organization=target.organization,
        actor=actor,
        via=via,
        action="target.delete",
        obj=target,
        before={"target_id": target.target_id, **_target_state(target)},
    )
    target.delete()
