"""The `departments` section: settings of departments beyond what consumer groups imply.

    departments:
      - team_id: team_research
        name: Research            # optional: its name when the section creates it
        fall_through: false       # strict: the team wallet is a hard cap (default true)

Each listed department is created if missing. A department the section does not list goes back
to the defaults (`fall_through: true`); without the section, departments are left as they are.
Applied after `consumer_groups`, which creates the departments groups name.
"""

from chargeback import services
from chargeback.config.report import ApplyContext
from chargeback.config.schema import Field, Located, boolean, list_of, mapping, slug, string
from chargeback.errors import ConfigError
from chargeback.models import Department

_department = mapping(
    {
        "team_id": Field(slug, required=True),
        "name": Field(string(max_length=200)),
        "fall_through": Field(boolean, default=True),
    }
)


def parse_departments(node, path: str) -> list[dict]:
    entries: list[Located] = list_of(_department)(node, path)
    seen = set()
    for entry in entries:
        if entry["team_id"] in seen:
            where, line = entry.where("team_id")
            raise ConfigError(f"{entry['team_id']} is listed twice", path=where, line=line)
        seen.add(entry["team_id"])
    return [dict(entry.values) for entry in entries]


def apply_departments(ctx: ApplyContext, value: list[dict]) -> None:
    organization, listed = ctx.organization, {entry["team_id"]: entry for entry in value}
    for team_id, entry in listed.items():
        department, created = services.department_get_or_create(
            organization=organization,
            team_id=team_id,
            name=entry["name"],
            actor=ctx.actor,
            via=ctx.via,
        )
        if created:
            ctx.report.add("created", "department", team_id)
        _settle(ctx, department, {"fall_through": entry["fall_through"]}, created)
    others = Department.objects.filter(organization=organization, fall_through=False).exclude(
        team_id__in=listed
    )
    for department in others.order_by("team_id"):
        _settle(ctx, department, {"fall_through": True}, False)


def _settle(ctx: ApplyContext, department: Department, wanted: dict, created: bool) -> None:
    changed = [key for key, value in wanted.items() if getattr(department, key) != value]
    if changed:
        services.department_update(
            department=department, actor=ctx.actor, via=ctx.via, **{k: wanted[k] for k in changed}
        )
        if not created:
            ctx.report.add("changed", "department", department.team_id, changed)
    elif not created:
        ctx.report.same("department", department.team_id)
