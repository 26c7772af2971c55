"""A new top-level section is one registered handler."""

import pytest

from chargeback.config import config_apply, register_section
from chargeback.config.registry import unregister_section
from chargeback.config.schema import Field, list_of, mapping, slug
from chargeback.errors import ConfigError
from chargeback.models import Department
from tests.factories import DepartmentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owners_section():
    """A toy section that sets department owner emails; it needs the groups' departments."""
    seen_departments = []

    def parse(node, path):
        return list_of(mapping({"team_id": Field(slug, required=True), "owner": Field(slug)}))(
            node, path
        )

    def apply(ctx, items):
        for item in items:
            department = Department.objects.filter(
                organization=ctx.organization, team_id=item["team_id"]
            ).first()
            seen_departments.append(department)
            if department is None:
                path, line = item.where("team_id")
                raise ConfigError("no such department", path=path, line=line)
            department.owner_emails = [f"{item['owner']}@example.com"]
            department.save()
            ctx.report.add("changed", "department", item["team_id"], ["owner"])

    register_section("owners", parse=parse, apply=apply, order=50)
    yield seen_departments
    unregister_section("owners")


@pytest.fixture
def outsider_teams(outsider_org):
    """The outsider's own team_legal (the seed's) and team_nobody (not in org at all)."""
    return [
        DepartmentFactory(
            organization=outsider_org, team_id=team_id, owner_emails=["olga@outsider.example"]
        )
        for team_id in ("team_legal", "team_nobody")
    ]


def test_a_registered_section_is_read_and_applied_after_the_groups(
    org, seed_text, owners_section, outsider_teams
):
    text = seed_text + "owners:\n  - team_id: team_legal\n    owner: lena\n"

    report = config_apply(organization=org, text=text, actor="a", via="config")

    lines = report.lines()
    assert lines.index("changed department team_legal (owner)") > lines.index(
        "created consumer_group legal"
    )
    ours = Department.objects.get(organization=org, team_id="team_legal")
    assert ours.owner_emails == ["lena@example.com"]
    # The section is handed the applying organization: the outsider's team_legal is not it.
    assert owners_section == [ours]
    for theirs in outsider_teams:
        theirs.refresh_from_db()
        assert theirs.owner_emails == ["olga@outsider.example"]


def test_a_registered_section_reports_errors_with_path_and_line_and_rolls_back(
    org, seed_text, owners_section, outsider_teams
):
    # team_nobody exists, but in the outsider: for org it is as unknown as any other name.
    text = seed_text + "owners:\n  - team_id: team_nobody\n    owner: lena\n"

    with pytest.raises(ConfigError) as caught:
        config_apply(organization=org, text=text, actor="a", via="config")

    assert (caught.value.path, caught.value.line) == ("owners[0].team_id", 22)
    assert caught.value.message == "owners[0].team_id: no such department (line 22)"
    assert owners_section == [None]
    # The groups' departments were rolled back too; the outsider's are as they were.
    assert not Department.objects.filter(organization=org).exists()
    assert [d.owner_emails for d in Department.objects.order_by("team_id")] == [
        ["olga@outsider.example"],
        ["olga@outsider.example"],
    ]


def test_an_unregistered_section_is_an_unknown_key(org, seed_text):
    with pytest.raises(ConfigError) as caught:
        config_apply(organization=org, text=seed_text + "owners: []\n", actor="a", via="config")
    assert (caught.value.path, caught.value.line) == ("owners", 21)
    assert "unknown key" in caught.value.message
