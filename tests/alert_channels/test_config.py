"""The config file's `alert_channels:` section: created and updated through the service, left
alone when absent, errors naming key and line; `kt config apply` (a real process against a live
server) takes the new key."""

import os
import subprocess
import sys

import pytest

from alert_channels.models import AlertChannel
from chargeback.config import config_apply
from chargeback.errors import ConfigError
from chargeback.models import AuditLog
from tests.config.conftest import SEED_FILE

SEED = SEED_FILE.read_text()
SEED_LINES = len(SEED.splitlines())


def section(receiver) -> str:
    return f"""\
alert_channels:
  - name: finance-slack
    kind: slack
    url: {receiver.url("/services/T0/B0/XYZ")}
  - name: support-budget
    url: {receiver.url("/support")}
    team_id: team_support
    budget_period: month
    events: [budget.threshold_crossed, budget.forecast_over]
"""


def apply(org, text):
    return config_apply(organization=org, text=text, actor="os:ana", via="config")


@pytest.mark.django_db
def test_the_section_creates_the_channels_then_reports_no_changes(org, receiver):
    report = apply(org, SEED + section(receiver))

    lines = report.lines()
    assert "created alert_channel finance-slack" in lines
    assert "created alert_channel support-budget" in lines
    slack = AlertChannel.objects.get(organization=org, name="finance-slack")
    assert (slack.kind, slack.scope, slack.events) == ("slack", "organization", [])
    webhook = AlertChannel.objects.get(organization=org, name="support-budget")
    assert (webhook.kind, webhook.scope, webhook.budget_period) == ("webhook", "budget", "month")
    assert webhook.department.team_id == "team_support"
    assert webhook.secret_ciphertext  # a secret was made (taken with rotate-secret)
    assert AuditLog.objects.filter(action="alert_channel.create", via="config").count() == 2
    assert "XYZ" not in report.text()

    assert apply(org, SEED + section(receiver)).lines()[0] == "no changes"

    changed = (
        section(receiver)
        .replace("    budget_period: month\n", "")
        .replace("events: [budget.threshold_crossed, budget.forecast_over]", "events: [wallet.low]")
    )
    report = apply(org, SEED + changed)
    assert "changed alert_channel support-budget (budget_period, events)" in report.lines()
    webhook.refresh_from_db()
    assert (webhook.scope, webhook.events) == ("department", ["wallet.low"])

    # A Slack URL shows only its host, but a new one is a change all the same.
    moved = changed.replace("/services/T0/B0/XYZ", "/services/T0/B0/NEW")
    assert "changed alert_channel finance-slack (url)" in apply(org, SEED + moved).lines()
    assert AlertChannel.objects.get(name="finance-slack").url.endswith("/B0/NEW")

    apply(org, SEED)  # no section: the channels are left alone
    assert AlertChannel.objects.filter(organization=org).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("old", "new", "path", "line", "message"),
    [
        (
            "url: http://127.0.0.1",
            "url: https://169.254.169.254",
            "alert_channels[0].url",
            4,
            "link-local",
        ),
        (
            "team_id: team_support",
            "team_id: team_nowhere",
            "alert_channels[1].team_id",
            7,
            "no department team_nowhere",
        ),
        (
            "[budget.threshold_crossed,",
            "[budget.exploded,",
            "alert_channels[1].events[0]",
            9,
            "budget.exploded",
        ),
        ("kind: slack", "kind: pager", "alert_channels[0].kind", 3, "pager"),
        (
            "    team_id: team_support\n",
            "",
            "alert_channels[1].budget_period",
            7,
            "needs the budget's department",
        ),
        (
            "name: support-budget",
            "name: finance-slack",
            "alert_channels[1].name",
            5,
            "already defined on line 2",
        ),
        (
            "    budget_period: month\n",
            "    budget_period: month\n    secret: x\n",
            "alert_channels[1].secret",
            9,
            "unknown key",
        ),
    ],
)
def test_a_bad_entry_names_key_and_line_and_changes_nothing(
    org, receiver, old, new, path, line, message
):
    text = section(receiver)
    assert old in text
    with pytest.raises(ConfigError) as refused:
        apply(org, SEED + text.replace(old, new, 1))
    assert refused.value.path == path
    assert refused.value.line == SEED_LINES + line
    assert message in refused.value.message
    assert not AlertChannel.objects.exists()


@pytest.mark.django_db
def test_the_kind_of_a_channel_cannot_change(org, receiver):
    apply(org, SEED + section(receiver))
    with pytest.raises(ConfigError) as refused:
        apply(org, SEED + section(receiver).replace("kind: slack", "kind: webhook"))
    assert (refused.value.path, refused.value.line) == ("alert_channels[0].kind", SEED_LINES + 3)
    assert AlertChannel.objects.get(name="finance-slack").kind == "slack"


@pytest.mark.django_db(transaction=True)
def test_kt_config_apply_takes_the_section(live_server, org, admin_token, receiver, tmp_path):
    path = tmp_path / "keeptrusts.yaml"
    path.write_text(SEED + section(receiver))
    env = {**os.environ, "KT_URL": live_server.url, "KT_TOKEN": admin_token}

    def kt(*args):
        return subprocess.run(
            [sys.executable, "-m", "kt.main", "config", *args, str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    applied = kt("apply")
    assert applied.returncode == 0, applied.stderr
    assert "created alert_channel support-budget" in applied.stdout
    assert AlertChannel.objects.filter(organization=org).count() == 2

    path.write_text(SEED + section(receiver).replace("team_support", "team_nowhere"))
    refused = kt("apply")
    assert refused.returncode != 0
    assert refused.stderr == (
        f"kt: {path}: alert_channels[1].team_id: no department team_nowhere in this "
        f"organization (line {SEED_LINES + 7})\n"
    )
