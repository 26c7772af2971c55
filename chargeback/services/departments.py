"""Departments, the cost owners: created by a config file (a group's wallet_team_id) or the
admin, renamed, given owners; deleted only while nothing points at them."""

from django.db import transaction
from django.db.models import ProtectedError, RestrictedError

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError, collect_errors
from chargeback.models import Department, Organization
from chargeback.validation import SLUG_RE, email_list_problems


def department_name_from_team_id(team_id: str) -> str:
    """`team_engineering` → `Engineering`, `team_shared_ops` → `Shared Ops`."""
    base = team_id.removeprefix("team_").removeprefix("team-") or team_id
    return base.replace("_", " ").replace("-", " ").strip().title()


def department_get_or_create(
    *,
    organization: Organization,
    team_id: str,
    name: str | None = None,
    actor: str = "system",
    via: str = "system",
) -> tuple[Department, bool]:
    """The department with this team id; created (named from the id unless given) if missing.
    An existing department is never renamed here: its name may have been edited in the admin."""
    department = Department.objects.filter(organization=organization, team_id=team_id).first()
    if department is not None:
        return department, False
    return (
        department_create(
            organization=organization, team_id=team_id, name=name or "", actor=actor, via=via
        ),
        True,
    )


def _department_check(department: Department) -> None:
    errors = collect_errors()
    if not SLUG_RE.match(department.team_id or ""):
        errors.add("team_id", "use letters, digits, '-' and '_'")
    elif (
        Department.objects.filter(
            organization_id=department.organization_id, team_id=department.team_id
        )
        .exclude(pk=department.pk)
        .exists()
    ):
        errors.add("team_id", f"{department.team_id} already exists in this organization")
    if not str(department.name or "").strip():
        errors.add("name", "must not be empty")
    for problem in email_list_problems(department.owner_emails):
        errors.add("owner_emails", problem)
    errors.raise_if_any()


def _department_state(department: Department) -> dict:
    return {
        "team_id": department.team_id,
        "name": department.name,
        "owner_emails": list(department.owner_emails),
        "fall_through": department.fall_through,
    }


def department_create(
    *,
    organization: Organization,
    team_id: str,
    name: str = "",
    owner_emails: list[str] | None = None,
    fall_through: bool = True,
    actor: str,
    via: str,
) -> Department:
    """A new department (named from its team id unless given); its team id must be new.
    `fall_through=False` makes it strict: its team wallet is a hard cap (wallets/cascade.py)."""
    department = Department(
        organization=organization,
        team_id=team_id,
        name=name or department_name_from_team_id(team_id),
        owner_emails=list(owner_emails or []),
        fall_through=fall_through,
    )
    _department_check(department)
    with transaction.atomic():
        department.save()
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="department.create",
            obj=department,
            after=_department_state(department),
        )
    return department


def department_update(*, department: Department, actor: str, via: str, **changes) -> Department:
    """Rename a department, change its owners or whether its spend falls through to the
    organization's wallet (`fall_through`). Its team id never changes: config files, API calls
    and exports name the department by it."""
    unknown = set(changes) - {"name", "owner_emails", "fall_through"}
    if unknown:
        raise ApplicationError(
            f"{', '.join(sorted(unknown))} cannot change", field=sorted(unknown)[0]
        )
    with transaction.atomic():
        department = Department.objects.select_for_update().get(pk=department.pk)
        before = _department_state(department)
        for field, value in changes.items():
            setattr(department, field, value)
        _department_check(department)
        after = _department_state(department)
        if after == before:
            return department
        department.save()
        audit_record(
            organization=department.organization,
            actor=actor,
            via=via,
            action="department.update",
            obj=department,
            before=before,
            after=after,
        )
    return department


def department_delete(*, department: Department, actor: str, via: str) -> None:
    """Delete a department that nothing points at yet (no consumer group, wallet or usage)."""
    with transaction.atomic():
        audit_record(
            organization=department.organization,
            actor=actor,
            via=via,
            action="department.delete",
            obj=department,
            before=_department_state(department),
        )
        try:
            department.delete()
        except (ProtectedError, RestrictedError):
            raise ApplicationError(
                f"{department.team_id} has consumer groups, wallets or usage; it stays"
            ) from None
