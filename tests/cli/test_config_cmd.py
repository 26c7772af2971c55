"""`kt config validate|apply` as a person runs it: a real process against a live server."""

import os
import subprocess
import sys

import pytest

from chargeback.models import ConsumerGroup
from tests.config.conftest import SEED_FILE, without_providers

pytestmark = pytest.mark.django_db(transaction=True)


def kt(live_server, token, *args):
    env = {**os.environ, "KT_URL": live_server.url, "KT_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "kt.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kt_config_validate_then_apply_then_apply_again(live_server, org, admin_token):
    validated = kt(live_server, admin_token, "config", "validate", str(SEED_FILE))
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.splitlines()[0] == f"{SEED_FILE}: valid"
    assert "created consumer_group engineering" in validated.stdout
    assert not ConsumerGroup.objects.exists()

    applied = kt(live_server, admin_token, "config", "apply", str(SEED_FILE))
    assert applied.returncode == 0, applied.stderr
    assert "created consumer_group legal" in applied.stdout
    assert ConsumerGroup.objects.filter(organization=org).count() == 3

    again = kt(live_server, admin_token, "config", "apply", str(SEED_FILE))
    assert again.stdout.splitlines()[0] == "no changes"


def test_kt_config_prints_one_line_with_path_and_line_on_a_bad_file(
    live_server, org, admin_token, tmp_path
):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SEED_FILE.read_text().replace("  - name: legal\n", "  - name: support\n"))

    result = kt(live_server, admin_token, "config", "apply", str(bad))

    assert result.returncode != 0
    assert result.stderr == (
        f"kt: {bad}: consumer_groups[2].name: consumer group 'support' is already defined "
        "on line 12 (line 15)\n"
    )
    assert not ConsumerGroup.objects.exists()


def test_kt_config_with_an_outsider_token_touches_only_the_outsider(
    live_server, org, outsider_org, admin_token, outsider_token, tmp_path
):
    # The outsider may name no environment variable (tests/conftest.py): the seed's groups only.
    groups_only = tmp_path / "groups.yaml"
    groups_only.write_text(without_providers(SEED_FILE.read_text()))
    result = kt(live_server, outsider_token, "config", "apply", str(groups_only))

    assert result.returncode == 0, result.stderr
    assert ConsumerGroup.objects.filter(organization=outsider_org).count() == 3
    assert not ConsumerGroup.objects.filter(organization=org).exists()


def test_kt_config_reports_a_missing_file_and_a_bad_token(live_server, org, admin_token):
    missing = kt(live_server, admin_token, "config", "validate", "/nonexistent/kt.yaml")
    assert missing.returncode != 0
    assert missing.stderr.startswith("kt: cannot read /nonexistent/kt.yaml")

    refused = kt(live_server, "kt_admin_not_a_token", "config", "validate", str(SEED_FILE))
    assert refused.returncode != 0
    assert "rejected KT_TOKEN" in refused.stderr


def test_kt_config_validate_names_the_path_and_line_of_a_bad_failover_key(
    live_server, org, admin_token, tmp_path
):
    bad = tmp_path / "fallback.yaml"
    bad.write_text(
        SEED_FILE.read_text().replace(
            "consumer_groups:", "  fallback:\n    strategy: fastest\nconsumer_groups:", 1
        )
    )

    result = kt(live_server, admin_token, "config", "validate", str(bad))

    assert result.returncode != 0
    assert result.stderr == (
        f"kt: {bad}: providers.fallback.strategy: unknown value 'fastest' (expected one of: "
        "ordered, cost, latency, round-robin) (line 9)\n"
    )
