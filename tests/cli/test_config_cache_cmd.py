"""`kt config validate|apply` with the response cache's keys, as a person runs it."""

import pytest

from gateway.models import ResponseCachePolicy
from tests.cli.test_config_cmd import kt
from tests.config.conftest import SEED_FILE

pytestmark = pytest.mark.django_db(transaction=True)


def test_kt_config_validate_names_a_bad_cache_key_and_apply_applies_a_good_one(
    live_server, org, admin_token, tmp_path
):
    seed = SEED_FILE.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(seed + "cache:\n  enabled: true\n  scope: everybody\n")

    refused = kt(live_server, admin_token, "config", "validate", str(bad))

    assert refused.returncode != 0
    assert refused.stderr == (
        f"kt: {bad}: cache.scope: unknown value 'everybody' (expected one of: consumer_group, "
        "organization, user) (line 23)\n"
    )
    good = tmp_path / "good.yaml"
    good.write_text(seed + "cache:\n  enabled: true\n  ttl_seconds: 600\n")
    validated = kt(live_server, admin_token, "config", "validate", str(good))
    assert validated.returncode == 0, validated.stderr
    assert "changed cache acme (enabled, ttl_seconds)" in validated.stdout
    assert not ResponseCachePolicy.objects.exists()

    applied = kt(live_server, admin_token, "config", "apply", str(good))
    assert applied.returncode == 0, applied.stderr
    policy = ResponseCachePolicy.objects.get(organization=org)
    assert (policy.enabled, policy.ttl_seconds) == (True, 600)
