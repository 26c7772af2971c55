"""A new top-level section is one registered handler."""

import pytest

from chargeback.config import config_apply, register_section
from chargeback.config.registry import unregister_section
from chargeback.config.schema import Field, list_of, mapping, slug
from chargeback.errors import ConfigError
from chargeback.models import Department

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


def test_a_registered_section_is_read_and_applied_after_the_groups(org, seed_text, owners_section):
    text = seed_text + "owners:\n  - team_id: team_legal\n    owner: lena\n"

    report = config_apply(organization=org, text=text, actor="a", via="config")

    lines = report.lines()
    assert lines.index("changed department team_legal (owner)") > lines.index(
        "created consumer_group legal"
    )
    assert Department.objects.get(team_id="team_legal").owner_emails == ["lena@example.com"]


def test_a_registered_section_reports_errors_with_path_and_line_and_rolls_back(
    org, seed_text, owners_section
):
    text = seed_text + "owners:\n  - team_id: team_nobody\n    owner: lena\n"

    with pytest.raises(ConfigError) as caught:
        config_apply(organization=org, text=text, actor="a", via="config")

    assert (caught.value.path, caught.value.line) == ("owners[0].team_id", 22)
    assert not Department.objects.exists()  # the groups' departments were rolled back too


def test_an_unregistered_section_is_an_unknown_key(org, seed_text):
    with pytest.raises(ConfigError) as caught:
        config_apply(organization=org, text=seed_text + "owners: []\n", actor="a", via="config")
    assert (caught.value.path, caught.value.line) == ("owners", 21)
    assert "unknown key" in caught.value.message
