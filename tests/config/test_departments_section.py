"""The config file's `departments:` section (chargeback/config/departments.py): a strict
department (`fall_through: false`) keeps its spend on its team wallet."""

import pytest

from chargeback.config import config_apply
from chargeback.errors import ConfigError
from chargeback.models import AuditLog, Department
from tests.factories import DepartmentFactory

pytestmark = pytest.mark.django_db

STRICT = "departments:\n  - team_id: team_support\n    fall_through: false\n"


def _apply(org, text):
    return config_apply(organization=org, text=text, actor="user:ana", via="config")


def _fall_through(org, team_id):
    return Department.objects.get(organization=org, team_id=team_id).fall_through


def test_a_department_listed_strict_stops_falling_through_and_the_change_is_audited(org, seed_text):
    report = _apply(org, seed_text + STRICT)

    assert _fall_through(org, "team_support") is False
    assert _fall_through(org, "team_engineering") is True
    assert "changed department team_support (fall_through)" in report.lines()
    audit = AuditLog.objects.get(organization=org, action="department.update")
    assert (audit.before["fall_through"], audit.after["fall_through"]) == (True, False)
    assert (audit.actor, audit.via) == ("user:ana", "config")


def test_unlisted_departments_go_back_to_falling_through_and_no_section_leaves_them(org, seed_text):
    _apply(org, seed_text + STRICT)
    _apply(org, seed_text)  # no `departments:` section: not managed by this file
    assert _fall_through(org, "team_support") is False

    report = _apply(org, seed_text + "departments: []\n")
    assert _fall_through(org, "team_support") is True
    assert "changed department team_support (fall_through)" in report.lines()


def test_a_listed_department_is_created_and_another_organizations_is_untouched(
    org, outsider_org, seed_text
):
    theirs = DepartmentFactory(organization=outsider_org, team_id="team_research")
    theirs.fall_through = False
    theirs.save()

    report = _apply(
        org, seed_text + "departments:\n  - team_id: team_research\n    name: Research\n"
    )

    ours = Department.objects.get(organization=org, team_id="team_research")
    assert (ours.name, ours.fall_through) == ("Research", True)
    assert "created department team_research" in report.lines()
    theirs.refresh_from_db()
    assert theirs.fall_through is False


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        ("departments:\n  - fall_through: false\n", "departments[0].team_id", "required"),
        ("departments:\n  - team_id: t\n    fall_through: sometimes\n", "fall_through", ""),
        (
            "departments:\n  - team_id: t\n  - team_id: t\n",
            "departments[1].team_id",
            "listed twice",
        ),
    ],
)
def test_a_bad_departments_section_names_the_key_and_line(org, seed_text, section, path, message):
    with pytest.raises(ConfigError) as exc:
        _apply(org, seed_text + section)
    assert path in str(exc.value.path)
    assert exc.value.line is not None
    assert message in str(exc.value)
