from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from chargeback.keys import hash_key
from chargeback.models import AdminToken, ConsumerGroup, Organization
from tests.config.conftest import SEED_FILE, without_providers

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_apply_config_prints_the_changes_then_no_changes(org):
    first = run("apply_config", str(SEED_FILE), "--org", "acme")
    second = run("apply_config", str(SEED_FILE), "--org", "acme")

    assert "created consumer_group engineering" in first
    assert second.splitlines()[0] == "no changes"
    assert ConsumerGroup.objects.filter(organization=org).count() == 3


def test_apply_config_dry_run_writes_nothing(org):
    out = run("apply_config", str(SEED_FILE), "--org", "acme", "--dry-run")

    assert "created consumer_group legal" in out
    assert not ConsumerGroup.objects.exists()


def test_apply_config_uses_the_only_organization_or_asks(org, outsider_org):
    with pytest.raises(CommandError, match="--org"):
        run("apply_config", str(SEED_FILE))


def test_apply_config_can_create_the_organization(tmp_path):
    # Without `providers`: a new organization may name no environment variable until the
    # operator allows one (org_env_refs, tests/trust/test_env_refs.py).
    groups_only = tmp_path / "groups.yaml"
    groups_only.write_text(without_providers(SEED_FILE.read_text()))
    run("apply_config", str(groups_only), "--org", "globex", "--create-org", "Globex")

    assert Organization.objects.get(slug="globex").consumer_groups.count() == 3


def test_apply_config_refuses_a_bad_file_with_path_and_line(org, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        SEED_FILE.read_text().replace("wallet_enforcement: true", "wallet_enforcement: 3")
    )

    with pytest.raises(CommandError) as caught:
        run("apply_config", str(bad), "--org", "acme")

    assert str(caught.value) == (
        f"{bad}: cost_tracking.wallet_enforcement: expected true or false, got an integer (line 20)"
    )
    assert not ConsumerGroup.objects.exists()


def test_create_admin_token_prints_a_token_that_works(org):
    raw = run("create_admin_token", "--org", "acme").strip()

    assert raw.startswith("kt_admin_")
    token = AdminToken.objects.get(organization=org)
    assert token.token_hash == hash_key(raw)
    response = Client().post(
        "/v1/config/validate",
        data="version: '1'\n",
        content_type="text/yaml",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 200


def test_create_admin_token_takes_a_given_token_once(org):
    assert run(
        "create_admin_token", "--org", "acme", "--token", "kt_admin_given_token_1"
    ).strip() == ("kt_admin_given_token_1")
    with pytest.raises(CommandError, match="cannot be used; choose another"):
        run("create_admin_token", "--org", "acme", "--token", "kt_admin_given_token_1")
