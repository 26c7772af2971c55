"""The config file's `cache` keys (gateway/response_cache/config_section.py): the
organization's defaults at the top level, a consumer group's own under `consumer_groups[]`;
every error names its key path and line and applies nothing."""

from decimal import Decimal

import pytest

from chargeback.config import config_apply, config_validate
from chargeback.errors import ConfigError
from chargeback.models import AuditLog, ConsumerGroup
from gateway.models import ResponseCachePolicy
from gateway.response_cache.rules import cache_rule_for
from tests.config.conftest import tenancy_snapshot

pytestmark = pytest.mark.django_db

ORG_CACHE = """cache:
  enabled: true
  ttl_seconds: 600
  scope: organization
  excluded_models: [o1-preview]
  hit_price: 0.0002
"""
SUPPORT_CACHE = "    cache: {ttl_seconds: 60, excluded_models: [gpt-4o]}\n"


def with_group_cache(seed_text: str, text: str = SUPPORT_CACHE, group: str = "support") -> str:
    """The seed with `text` added to one consumer group (after its wallet_team_id line)."""
    anchor = f"    wallet_team_id: team_{group}\n"
    return seed_text.replace(anchor, anchor + text)


def _apply(org, text):
    return config_apply(organization=org, text=text, actor="user:ana", via="config")


def _rows():
    return {
        (p.consumer_group.name if p.consumer_group_id else None): p
        for p in ResponseCachePolicy.objects.select_related("consumer_group")
    }


def test_the_organization_and_a_group_get_their_cache_settings(org, seed_text):
    report = _apply(org, with_group_cache(seed_text) + ORG_CACHE)

    rows = _rows()
    assert set(rows) == {None, "support"}
    assert (rows[None].enabled, rows[None].ttl_seconds, rows[None].scope) == (
        True,
        600,
        "organization",
    )
    assert rows[None].hit_price == Decimal("0.0002")
    assert rows[None].excluded_models == ["o1-preview"]
    assert (rows["support"].enabled, rows["support"].ttl_seconds) == (None, 60)
    lines = report.lines()
    assert "changed cache acme (enabled, ttl_seconds, scope, excluded_models, hit_price)" in lines
    assert "created consumer_group support" in lines
    audit = AuditLog.objects.filter(organization=org, action="cache_policy.set")
    assert audit.count() == 2
    assert {a.via for a in audit} == {"config"}

    support = ConsumerGroup.objects.get(organization=org, name="support")
    rule = cache_rule_for(support)
    assert (rule.ttl_seconds, rule.scope) == (60, "organization")
    assert rule.namespace == f"o{int(org.created_at.timestamp() * 1_000_000)}"
    assert rule.excluded_models == {"o1-preview", "gpt-4o"}
    assert rule.hit_price == Decimal("0.0002")
    legal = cache_rule_for(ConsumerGroup.objects.get(organization=org, name="legal"))
    assert (legal.ttl_seconds, legal.excluded_models) == (600, {"o1-preview"})


def test_applying_the_same_file_again_changes_nothing(org, seed_text):
    text = with_group_cache(seed_text) + ORG_CACHE
    _apply(org, text)
    audit_rows = AuditLog.objects.count()
    report = _apply(org, text)
    assert report.changed is False
    assert AuditLog.objects.count() == audit_rows


def test_a_group_left_without_cache_inherits_and_a_file_without_the_section_leaves_it(
    org, seed_text
):
    _apply(org, with_group_cache(seed_text) + ORG_CACHE)
    report = _apply(org, seed_text)  # no top-level `cache`; support's own settings gone

    assert set(_rows()) == {None}
    assert "changed consumer_group support (cache)" in report.lines()
    assert AuditLog.objects.filter(action="cache_policy.delete").count() == 1
    _apply(org, seed_text + "cache: {}\n")
    assert cache_rule_for(ConsumerGroup.objects.get(organization=org, name="support")) is None


def test_the_cache_is_off_unless_enabled(org, seed_text):
    _apply(org, seed_text + "cache:\n  ttl_seconds: 60\n")
    group = ConsumerGroup.objects.get(organization=org, name="engineering")
    assert cache_rule_for(group) is None
    _apply(org, with_group_cache(seed_text, "    cache: {enabled: true}\n", "engineering"))
    assert cache_rule_for(group).ttl_seconds == 60


def test_a_group_may_share_entries_only_when_the_organization_does(org, seed_text):
    before = tenancy_snapshot()
    text = with_group_cache(seed_text, "    cache: {enabled: true, scope: organization}\n")
    with pytest.raises(ConfigError) as caught:
        _apply(org, text)
    line = text.splitlines().index("    cache: {enabled: true, scope: organization}") + 1
    assert (caught.value.path, caught.value.line) == ("consumer_groups[1].cache.scope", line)
    assert "set the organization's cache scope to organization first" in caught.value.message
    assert tenancy_snapshot() == before
    assert not ResponseCachePolicy.objects.exists()

    _apply(org, text + "cache: {scope: organization}\n")
    support = ConsumerGroup.objects.get(organization=org, name="support")
    assert cache_rule_for(support).namespace.startswith("o")


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        (
            "cache:\n  enabled: yes please\n",
            "cache.enabled",
            "expected true or false, got a string",
        ),
        ("cache:\n  ttl_seconds: 0\n", "cache.ttl_seconds", "must be at least 1"),
        ("cache:\n  ttl_seconds: 2592001\n", "cache.ttl_seconds", "must be at most 2592000"),
        ("cache:\n  max_entry_bytes: 10\n", "cache.max_entry_bytes", "must be at least 1024"),
        (
            "cache:\n  scope: everyone\n",
            "cache.scope",
            "unknown value 'everyone' (expected one of: consumer_group, organization, user)",
        ),
        (
            "cache:\n  excluded_models: gpt-4o\n",
            "cache.excluded_models",
            "expected a list, got a string",
        ),
        (
            "cache:\n  excluded_models: [gpt-4o, gpt-4o]\n",
            "cache.excluded_models[1]",
            "'gpt-4o' is listed twice",
        ),
        ("cache:\n  hit_price: -1\n", "cache.hit_price", "must be zero or more"),
        ("cache:\n  hit_price: 0.000000001\n", "cache.hit_price", "at most 8 decimal places"),
        ("cache:\n  hit_price: cheap\n", "cache.hit_price", "'cheap' is not an amount"),
        (
            "cache:\n  ttl: 60\n",
            "cache.ttl",
            (
                "unknown key (allowed here: enabled, ttl_seconds, max_entry_bytes, scope, "
                "excluded_models, hit_price)"
            ),
        ),
        ("cache: true\n", "cache", "expected a mapping, got a boolean"),
    ],
)
def test_a_bad_organization_value_names_its_key_path_and_line(
    org, seed_text, section, path, message
):
    before = tenancy_snapshot()
    text = seed_text + section
    line = seed_text.count("\n") + (1 if section.startswith("cache: ") else 2)
    for run in (_apply, lambda o, t: config_validate(organization=o, text=t, actor="a", via="api")):
        with pytest.raises(ConfigError) as caught:
            run(org, text)
        assert (caught.value.path, caught.value.line) == (path, line)
        assert caught.value.message == f"{path}: {message} (line {line})"
    assert tenancy_snapshot() == before
    assert not ResponseCachePolicy.objects.exists()


@pytest.mark.parametrize(
    ("group_text", "path", "message"),
    [
        (
            "    cache: {ttl_seconds: -5}\n",
            "consumer_groups[1].cache.ttl_seconds",
            "must be at least 1",
        ),
        (
            "    cache: {hit_price: 0.01}\n",
            "consumer_groups[1].cache.hit_price",
            (
                "unknown key (allowed here: enabled, ttl_seconds, max_entry_bytes, scope, "
                "excluded_models)"
            ),
        ),
        (
            "    cahce: {enabled: true}\n",
            "consumer_groups[1].cahce",
            (
                "unknown key (allowed here: name, api_key, api_key_ref, wallet_team_id, "
                "allowed_models, rate_limits, active, cache, cost_tickets)"
            ),
        ),
        ("    cache: [on]\n", "consumer_groups[1].cache", "expected a mapping, got a list"),
    ],
)
def test_a_bad_group_value_names_its_key_path_and_line(org, seed_text, group_text, path, message):
    before = tenancy_snapshot()
    text = with_group_cache(seed_text, group_text)
    line = text.splitlines().index(group_text.rstrip("\n")) + 1
    with pytest.raises(ConfigError) as caught:
        _apply(org, text)
    assert (caught.value.path, caught.value.line) == (path, line)
    assert caught.value.message == f"{path}: {message} (line {line})"
    assert tenancy_snapshot() == before


def test_another_organizations_file_never_touches_this_ones_cache(org, outsider_org, seed_text):
    from tests.config.conftest import without_providers

    _apply(org, seed_text + ORG_CACHE)
    outsider_text = without_providers(seed_text).replace("kt_cg_", "kt_cg_outsider_")
    config_apply(
        organization=outsider_org, text=outsider_text + "cache: {}\n", actor="x", via="api"
    )
    rows = ResponseCachePolicy.objects.filter(organization=org, consumer_group__isnull=True)
    assert rows.get().ttl_seconds == 600
    assert (
        not ResponseCachePolicy.objects.filter(organization=outsider_org)
        .exclude(consumer_group__isnull=True)
        .exists()
    )
