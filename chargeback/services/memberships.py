"""Staff memberships: a user's place (and role) in one organization."""

from django.db import transaction

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError, collect_errors
from chargeback.models import Department, Membership, Organization
from chargeback.roles import GROUP_PREFIX


def _membership_state(membership: Membership) -> dict:
    return {
        "user": membership.user.get_username(),
        "role": membership.role,
        "departments": sorted(d.team_id for d in membership.departments.all()),
    }


def membership_save(
    *,
    organization: Organization,
    user,
    role: str,
    departments: list[Department] | None = None,
    actor: str,
    via: str,
) -> Membership:
    """Make `user` staff of `organization` in `role` (budget owners: of `departments`), or
    change their role. A user is staff of one organization; the role's group and staff flag
    follow (chargeback.roles.membership_sync). A budget owner owns at least one department."""
    departments = list(departments or [])
    errors = collect_errors()
    if role not in Membership.Role.values:
        errors.add("role", f"unknown role {role!r}")
    if any(d.organization_id != organization.pk for d in departments):
        errors.add("departments", "departments must be this organization's")
    elif role == Membership.Role.BUDGET_OWNER and not departments:
        # A budget owner sees only their departments: with none, every page would be empty.
        errors.add(
            "departments",
            "a budget owner owns at least one department: choose the departments they may see",
        )
    errors.raise_if_any()
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(user=user).first()
        if membership is not None and membership.organization_id != organization.pk:
            raise ApplicationError("this user is staff of another organization", field="user")
        before = _membership_state(membership) if membership is not None else None
        if membership is None:
            membership = Membership(user=user, organization=organization)
        membership.role = role
        membership.save()
        membership.departments.set(departments)
        after = _membership_state(membership)
        if after != before:
            audit_record(
                organization=organization,
                actor=actor,
                via=via,
                action="membership.update" if before else "membership.create",
                obj=membership,
                before=before,
                after=after,
            )
    return membership


def membership_delete(*, membership: Membership, actor: str, via: str) -> None:
    """Take a user's staff access away (their account stays; its role group is removed)."""
    with transaction.atomic():
        audit_record(
            organization=membership.organization,
            actor=actor,
            via=via,
            action="membership.delete",
            obj=membership,
            before=_membership_state(membership),
        )
        user = membership.user
        membership.delete()
        user.groups.remove(*user.groups.filter(name__startswith=GROUP_PREFIX))
        if user.is_staff and not user.is_superuser:
            user.is_staff = False
            user.save(update_fields=["is_staff"])
