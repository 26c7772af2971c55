"""The config file's `budgets:` section (budgets/config_section.py), on PostgreSQL."""

from decimal import Decimal

import pytest
from django.test import Client

from budgets import services as budget_services
from budgets.models import Budget
from chargeback.config import config_apply
from chargeback.errors import ConfigError
from chargeback.models import AuditLog
from tests.config.conftest import SEED_FILE, tenancy_snapshot
from tests.factories import DepartmentFactory

pytestmark = pytest.mark.django_db

SEED = SEED_FILE.read_text()
SEED_LINES = len(SEED.splitlines())  # the budgets section starts on the line after

BUDGETS = """\
budgets:
  - team_id: team_support
    amount: 1234567890.12345678
    currency: USD
    period: month
    thresholds: [50, 80, 100]
    owner_emails: [lead@example.com]
  - team_id: team_legal
    amount: 3000
    period: quarter
"""


def line(n: int) -> int:
    """Line n (1-based) of a budgets section appended to the seed file."""
    return SEED_LINES + n


def apply(org, text, via="config"):
    return config_apply(organization=org, text=text, actor="os:ana", via=via)


def snapshot() -> dict:
    state = tenancy_snapshot()
    state["Budget"] = list(Budget.objects.order_by("pk").values())
    return state


def test_the_seed_file_with_a_budgets_section_creates_the_budgets(org):
    report = apply(org, SEED + BUDGETS)

    lines = report.lines()
    assert "created budget team_support/month" in lines
    assert "created budget team_legal/quarter" in lines
    assert lines.index("created budget team_support/month") > lines.index(
        "created consumer_group legal"
    )
    support = Budget.objects.get(organization=org, department__team_id="team_support")
    # Read from the YAML text: through float this would be 1234567890.12345672.
    assert support.amount == Decimal("1234567890.12345678")
    assert (support.currency, support.period) == ("USD", "month")
    assert support.thresholds == [50, 80, 100]
    assert support.owner_emails == ["lead@example.com"]
    legal = Budget.objects.get(organization=org, department__team_id="team_legal")
    assert (legal.amount, legal.period, legal.thresholds) == (
        Decimal("3000"),
        "quarter",
        [50, 80, 100],
    )
    rows = AuditLog.objects.filter(organization=org, action="budget.create")
    assert sorted((r.after["team_id"], r.actor, r.via) for r in rows) == [
        ("team_legal", "os:ana", "config"),
        ("team_support", "os:ana", "config"),
    ]


def test_applying_the_same_file_twice_changes_nothing(org):
    apply(org, SEED + BUDGETS)
    before = snapshot()

    report = apply(org, SEED + BUDGETS)

    assert not report.changed
    assert report.lines()[0] == "no changes"
    assert "budget team_support/month" in report.unchanged
    assert snapshot() == before


def test_a_changed_budget_is_reported_and_audited(org):
    apply(org, SEED + BUDGETS)
    changed = BUDGETS.replace("1234567890.12345678", "12500.50").replace(
        "[50, 80, 100]", "[75, 90]"
    )

    report = apply(org, SEED + changed, via="api")

    assert report.lines() == [
        "changed budget team_support/month (amount, thresholds)",
        report.lines()[1],  # the unchanged summary
        report.lines()[2],  # the OPENAI_API_KEY warning of the seed file
    ]
    assert report.lines()[1].startswith("unchanged:")
    assert "budget team_legal/quarter" in report.unchanged
    budget = Budget.objects.get(organization=org, department__team_id="team_support")
    assert (budget.amount, budget.thresholds) == (Decimal("12500.50"), [75, 90])
    update = AuditLog.objects.get(organization=org, action="budget.update")
    assert (update.actor, update.via) == ("os:ana", "api")
    assert update.before["amount"] == "1234567890.12345678"
    assert update.after["thresholds"] == [75, 90]
    assert update.after["owner_emails"] == ["lead@example.com"]


def test_left_out_thresholds_go_back_to_the_default_and_left_out_owners_stay(org):
    apply(org, SEED + BUDGETS)
    without = BUDGETS.replace("    thresholds: [50, 80, 100]\n", "").replace(
        "    owner_emails: [lead@example.com]\n", ""
    )
    assert "created" not in apply(org, SEED + without).text()
    apply(org, SEED + without.replace("amount: 3000", "amount: 3000\n    thresholds: [90]"))

    report = apply(org, SEED + without)

    assert report.changes[0].text() == "changed budget team_legal/quarter (thresholds)"
    support = Budget.objects.get(organization=org, department__team_id="team_support")
    assert support.owner_emails == ["lead@example.com"]


def test_budgets_not_in_the_file_are_left_alone(org):
    apply(org, SEED)
    budget_services.budget_create(
        organization=org, team_id="team_engineering", amount=Decimal("500"), actor="a"
    )

    report = apply(org, SEED + BUDGETS)
    apply(org, SEED + "budgets: []\n")

    assert "team_engineering" not in report.text()
    assert Budget.objects.filter(organization=org).count() == 3


BAD_ENTRIES = [
    # (the entry's replacement text, key path, line within the section, message part)
    ("amount: -5", "budgets[0].amount", 3, "must be greater than zero"),
    ("amount: 0.000000001", "budgets[0].amount", 3, "at most 8 decimal places"),
    ("amount: '100'", "budgets[0].amount", 3, "expected an amount"),
    ("thresholds: [50, 100, 80]", "budgets[0].thresholds[2]", 6, "increasing order"),
    ("thresholds: [50, 50]", "budgets[0].thresholds[1]", 6, "increasing order"),
    ("thresholds: [50, 1001]", "budgets[0].thresholds[1]", 6, "between 1 and 1000"),
    ("thresholds: []", "budgets[0].thresholds", 6, "give at least one threshold"),
    ("period: week", "budgets[0].period", 5, "unknown value 'week'"),
    ("owner_emails: [lead]", "budgets[0].owner_emails[0]", 7, "not an email address"),
    ("currency: EUR", "budgets[0].currency", 4, "must be USD"),
    ("team_id: team_nobody", "budgets[0].team_id", 2, "no department team_nobody"),
]


def _bad(replacement: str) -> str:
    key = replacement.split(":")[0]
    lines = BUDGETS.splitlines()
    index = next(i for i, text in enumerate(lines) if text.strip(" -").startswith(key + ":"))
    lines[index] = lines[index][: lines[index].index(key)] + replacement
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("replacement", "path", "at", "message"), BAD_ENTRIES)
def test_a_bad_entry_names_path_and_line_and_changes_nothing(org, replacement, path, at, message):
    apply(org, SEED + BUDGETS.replace("amount: 3000", "amount: 2000"))
    before = snapshot()
    # The rest of the file would change things (a new group, the legal amount): none of it lands.
    grown = SEED.replace(
        "cost_tracking:",
        "  - name: ops\n    api_key: kt_cg_ops_prod_key\n    wallet_team_id: team_ops\ncost_tracking:",
    )
    offset = len(grown.splitlines())

    with pytest.raises(ConfigError) as caught:
        apply(org, grown + _bad(replacement))

    assert (caught.value.path, caught.value.line) == (path, offset + at)
    assert message in caught.value.message
    assert snapshot() == before


def test_the_same_team_and_period_twice_is_refused(org):
    twice = BUDGETS + "  - team_id: team_support\n    amount: 10\n"

    with pytest.raises(ConfigError) as caught:
        apply(org, SEED + twice)

    assert caught.value.path == "budgets[2].team_id"
    assert caught.value.line == line(11)
    assert f"budget team_support/month is already defined on line {line(2)}" in str(
        caught.value.message
    )
    assert not Budget.objects.exists()
    # The same team with another period is a second budget, not a duplicate.
    apply(org, SEED + BUDGETS + "  - team_id: team_support\n    amount: 10\n    period: quarter\n")
    assert Budget.objects.filter(department__team_id="team_support").count() == 2


def test_the_validate_endpoint_reports_a_budgets_error(org, outsider_org, admin_token):
    # Another organization's department of that name does not count.
    DepartmentFactory(organization=outsider_org, team_id="team_nobody")
    client = Client()
    bad = SEED + BUDGETS.replace("team_legal", "team_nobody")

    response = client.post(
        "/v1/config/validate",
        data=bad,
        content_type="text/yaml",
        HTTP_AUTHORIZATION=f"Bearer {admin_token}",
    )

    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["path"], body["line"]) == (
        "invalid_config",
        "budgets[1].team_id",
        line(8),
    )
    # A good file validates (a dry run) and writes nothing, for this or any other organization.
    response = client.post(
        "/v1/config/validate",
        data=SEED + BUDGETS,
        content_type="text/yaml",
        HTTP_AUTHORIZATION=f"Bearer {admin_token}",
    )
    assert response.status_code == 200
    assert "created budget team_legal/quarter" in response.json()["report"]
    assert not Budget.objects.exists()
