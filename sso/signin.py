"""What a verified sign-in means here: which account, which organization, which role.

`sso_sign_in` is given claims that sso/oidc.py has already verified (signature from the
issuer's keys, issuer, audience = the connection's client id, nonce, expiry). The organization
is always the connection's. The account is the one this (issuer, subject) created at its first
sign-in, never an existing account found by e-mail or username, so a provider (or a person who
can set their e-mail there) cannot take over a break-glass or another organization's account.
"""

import logging

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError
from chargeback.models import Department, Membership
from chargeback.services import membership_delete, membership_save
from sso.models import SsoConnection, SsoIdentity

log = logging.getLogger(__name__)

# When several groups grant roles, the widest wins: a viewer sees all of the organization, a
# budget owner only their departments.
ROLE_ORDER = [
    Membership.Role.OWNER,
    Membership.Role.ADMIN,
    Membership.Role.FINANCE,
    Membership.Role.VIEWER,
    Membership.Role.BUDGET_OWNER,
]


class SignInRefused(ApplicationError):
    """A verified person this organization does not let in; `message` is shown to them."""


def _as_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def claims_problem(connection: SsoConnection, claims: dict) -> str | None:
    """Which required claim does not match (None: all do). A claim may be a list (any of its
    values may match), a required value a list of accepted values."""
    for name, wanted in (connection.required_claims or {}).items():
        accepted = {wanted} if isinstance(wanted, str) else set(wanted)
        got = claims.get(name)
        values = got if isinstance(got, list) else [got]
        if got is None or not accepted.intersection(_as_text(v) for v in values):
            return name
    return None


def groups_of(connection: SsoConnection, claims: dict) -> list[str]:
    raw = claims.get(connection.groups_claim) if connection.groups_claim else None
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        return [str(g) for g in raw]
    return []


def role_of(connection: SsoConnection, groups: list[str]) -> tuple[str | None, list[str]]:
    """(role, team ids) the groups grant: a role_map group gives its role, a department_map
    group makes a budget owner of its departments; the widest role wins, then default_role.
    (None, []) when nothing applies."""
    roles = {connection.role_map[g] for g in groups if g in connection.role_map}
    teams = sorted({t for g in groups for t in connection.department_map.get(g, [])})
    if teams:
        roles.add(Membership.Role.BUDGET_OWNER)
    for role in ROLE_ORDER:
        if role in roles:
            return role, teams if role == Membership.Role.BUDGET_OWNER else []
    return (connection.default_role or None), []


def _username_for(connection: SsoConnection, claims: dict) -> str:
    """A free username: the e-mail (or preferred_username, or subject), made unique with the
    organization's slug. Only a label: accounts are found by identity, never by username."""
    base = (claims.get("email") or claims.get("preferred_username") or claims["sub"])[:120]
    taken = (
        get_user_model()
        .objects.filter(username__startswith=base)
        .values_list("username", flat=True)
    )
    taken = set(taken)
    slug = connection.organization.slug
    for candidate in [base, f"{base}+{slug}", *(f"{base}+{slug}{n}" for n in range(2, 1000))]:
        if candidate not in taken:
            return candidate
    raise SignInRefused("no free username for this account")


def _profile(claims: dict) -> dict:
    return {
        "email": (claims.get("email") or "")[:254],
        "first_name": (claims.get("given_name") or "")[:150],
        "last_name": (claims.get("family_name") or "")[:150],
    }


def _identity_create(connection: SsoConnection, claims: dict) -> SsoIdentity:
    user = get_user_model()(username=_username_for(connection, claims), **_profile(claims))
    user.set_unusable_password()  # signs in through the provider only
    user.save()
    identity = SsoIdentity.objects.create(
        organization=connection.organization,
        issuer=claims["iss"],
        subject=claims["sub"],
        user=user,
    )
    audit_record(
        organization=connection.organization,
        actor=user.get_username(),
        via="sso",
        action="sso_identity.create",
        obj=identity,
        after={"user": user.get_username(), "issuer": identity.issuer, "subject": claims["sub"]},
    )
    return identity


def _refuse_and_revoke(identity: SsoIdentity | None, message: str):
    """The provider no longer grants a role: staff access of an account it created goes."""
    if identity is not None:
        membership = Membership.objects.filter(user=identity.user).first()
        if membership is not None:
            membership_delete(membership=membership, actor=identity.user.get_username(), via="sso")
    return SignInRefused(message)


def sso_sign_in(*, connection: SsoConnection, claims: dict):
    """The user account for these verified claims, created at the first sign-in, with its
    membership of the connection's organization set from the claims (when the connection maps
    groups) in the same transaction. Raises SignInRefused (nothing created) when a required
    claim does not match, no role applies, or the account is disabled."""
    organization = connection.organization
    if claims.get("iss") != connection.issuer or not claims.get("sub"):
        raise SignInRefused("the identity provider's answer is not for this organization")
    bad_claim = claims_problem(connection, claims)
    if bad_claim:
        log.warning("sso: %s refused for %s: claim %s", claims["sub"], organization.slug, bad_claim)
        raise SignInRefused(
            f"This {connection.display_name} account is not one of {organization.name}'s "
            f"(claim {bad_claim})."
        )
    groups = groups_of(connection, claims)
    role, teams = role_of(connection, groups)
    try:
        return _sign_in(connection, claims, groups, role, teams)
    except IntegrityError:
        # The same person's first sign-in, twice at once: the other one created the account.
        return _sign_in(connection, claims, groups, role, teams)


def _sign_in(connection, claims, groups, role, teams):
    organization = connection.organization
    refused = None
    with transaction.atomic():
        identity = (
            SsoIdentity.objects.select_for_update()
            .select_related("user")
            .filter(organization=organization, issuer=claims["iss"], subject=claims["sub"])
            .first()
        )
        membership = Membership.objects.filter(user=identity.user).first() if identity else None
        keep = not connection.groups_claim and membership is not None
        departments = list(Department.objects.filter(organization=organization, team_id__in=teams))
        if role is None and not keep:
            refused = _refuse_and_revoke(
                identity,
                f"Your {connection.display_name} account has no role in {organization.name}; "
                "ask its administrators.",
            )
        elif role == Membership.Role.BUDGET_OWNER and not departments and not keep:
            refused = _refuse_and_revoke(
                identity,
                f"Your {connection.display_name} account makes you a budget owner of no "
                f"department of {organization.name}; ask its administrators.",
            )
        elif identity is not None and not identity.user.is_active:
            raise SignInRefused("This account is disabled.")
        else:
            identity = identity or _identity_create(connection, claims)
            user = identity.user
            profile = _profile(claims)
            if any(getattr(user, k) != v for k, v in profile.items()):
                get_user_model().objects.filter(pk=user.pk).update(**profile)
            if not keep:
                membership_save(
                    organization=organization,
                    user=user,
                    role=role,
                    departments=departments,
                    actor=user.get_username(),
                    via="sso",
                )
            identity.groups = groups
            identity.last_sign_in_at = timezone.now()
            identity.save(update_fields=["groups", "last_sign_in_at"])
            return user
    raise refused
