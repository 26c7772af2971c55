"""An organization's single sign-on connection: the one service that writes it (admin, shell).

It decides who becomes staff of the organization and with which role, so it refuses, before
writing: an issuer the server may not connect to (the upstream address rules of
chargeback/upstream.py: the server fetches the provider's keys and exchanges codes there), a
client secret the organization may not use (an environment variable the operator does not
allow it, a stored secret that is not its own: the same check as provider targets), roles and
departments that do not exist in the organization.
"""

from django.db import transaction

from chargeback.audit import audit_record, audited_delete
from chargeback.errors import ApplicationError, collect_errors
from chargeback.models import Department, Membership, Organization
from chargeback.targets import target_check
from sso.models import SsoConnection

# target_check's arguments -> this service's.
SECRET_FIELDS = {
    "base_url": "issuer",
    "secret_env": "client_secret_env",
    "secret_name": "client_secret",
}


def _strings(value) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return value
    return None


def _check_maps(organization, *, role_map, department_map, default_role, required_claims, errors):
    roles = Membership.Role.values
    if not isinstance(role_map, dict) or any(
        not isinstance(group, str) or role not in roles for group, role in role_map.items()
    ):
        errors.add("role_map", f'{{"group": "role"}} with roles among {", ".join(roles)}')
    if not isinstance(department_map, dict) or any(
        _strings(teams) is None for teams in department_map.values()
    ):
        errors.add("department_map", '{"group": ["team_id", ...]}')
    else:
        wanted = {team for teams in department_map.values() for team in _strings(teams)}
        known = set(
            Department.objects.filter(organization=organization, team_id__in=wanted).values_list(
                "team_id", flat=True
            )
        )
        if wanted - known:
            errors.add(
                "department_map",
                f"no department {', '.join(sorted(wanted - known))} in this organization",
            )
    if default_role and default_role not in roles:
        errors.add("default_role", f"unknown role {default_role!r}")
    if not isinstance(required_claims, dict) or any(
        _strings(v) is None for v in required_claims.values()
    ):
        errors.add("required_claims", '{"claim": "value"} or {"claim": ["value", ...]}')


def _state(connection: SsoConnection) -> dict:
    # Names of where the secret lives, never its value.
    return {
        "enabled": connection.enabled,
        "issuer": connection.issuer,
        "client_id": connection.client_id,
        "client_secret_env": connection.client_secret_env,
        "client_secret": connection.client_secret.name if connection.client_secret_id else "",
        "scopes": connection.scopes,
        "groups_claim": connection.groups_claim,
        "role_map": connection.role_map,
        "department_map": connection.department_map,
        "default_role": connection.default_role,
        "required_claims": connection.required_claims,
        "display_name": connection.display_name,
        "listed_on_login_page": connection.listed_on_login_page,
    }


def sso_connection_save(
    *,
    organization: Organization,
    issuer: str,
    client_id: str,
    client_secret_env: str = "",
    client_secret_name: str = "",
    scopes: str = "openid email profile",
    groups_claim: str = "groups",
    role_map: dict | None = None,
    department_map: dict | None = None,
    default_role: str = "",
    required_claims: dict | None = None,
    display_name: str = "single sign-on",
    enabled: bool = True,
    listed_on_login_page: bool = False,
    actor: str,
    via: str,
) -> SsoConnection:
    """Create or change the organization's connection (one per organization). Raises
    ApplicationError naming the field at fault; audited `sso_connection.create|update`."""
    issuer = (issuer or "").strip()
    role_map = {} if role_map is None else role_map
    department_map = {} if department_map is None else department_map
    required_claims = {} if required_claims is None else required_claims
    errors = collect_errors()
    if not issuer.startswith(("https://", "http://")) or "?" in issuer or "#" in issuer:
        errors.add("issuer", "the provider's issuer URL, as its discovery document gives it")
    if not (client_id or "").strip():
        errors.add("client_id", "the client id the provider gave this portal")
    if not client_secret_env and not client_secret_name:
        errors.add("client_secret", "give the client secret: a stored secret or a variable")
    if "openid" not in (scopes or "").split():
        errors.add("scopes", "must include openid")
    _check_maps(
        organization,
        role_map=role_map,
        department_map=department_map,
        default_role=default_role,
        required_claims=required_claims,
        errors=errors,
    )
    errors.raise_if_any()
    try:
        secret = target_check(
            organization=organization,
            base_url=issuer,
            secret_env=client_secret_env or "",
            secret_name=client_secret_name or "",
        )
    except ApplicationError as exc:
        exc.field = SECRET_FIELDS.get(exc.field, exc.field)
        raise
    with transaction.atomic():
        connection = (
            SsoConnection.objects.select_for_update().filter(organization=organization).first()
        )
        before = _state(connection) if connection is not None else None
        connection = connection or SsoConnection(organization=organization)
        connection.issuer = issuer
        connection.client_id = client_id.strip()
        connection.client_secret_env = client_secret_env or ""
        connection.client_secret = secret
        connection.scopes = " ".join(scopes.split())
        connection.groups_claim = (groups_claim or "").strip()
        connection.role_map = role_map
        connection.department_map = {g: _strings(t) for g, t in department_map.items()}
        connection.default_role = default_role or ""
        connection.required_claims = required_claims
        connection.display_name = display_name or "single sign-on"
        connection.enabled = enabled
        connection.listed_on_login_page = listed_on_login_page
        connection.save()
        after = _state(connection)
        if after != before:
            audit_record(
                organization=organization,
                actor=actor,
                via=via,
                action="sso_connection.update" if before else "sso_connection.create",
                obj=connection,
                before=before,
                after=after,
            )
    return connection


def sso_connection_delete(*, connection: SsoConnection, actor: str, via: str) -> None:
    """Single sign-on off for the organization. Accounts it created stay (with their
    memberships and identities: a new connection to the same issuer finds them again); they
    cannot sign in meanwhile, having no password."""
    audited_delete(
        connection, actor=actor, via=via, action="sso_connection.delete", before=_state(connection)
    )
