"""The config file's failover, routing-policy and rate-limit keys (the Keeptrusts names):
applied, reported and idempotent; every mistake refused with its key path and line, changing
nothing."""

from decimal import Decimal

import pytest

from chargeback.config import config_apply, config_validate
from chargeback.errors import ConfigError
from chargeback.models import AuditLog, ConsumerGroup
from gateway.models import GatewaySettings
from tests.config.conftest import tenancy_snapshot, without_providers
from tests.factories import PriceFactory

pytestmark = pytest.mark.django_db

PROVIDERS = """\
providers:
  targets:
    - id: openai
      provider: openai
      secret_key_ref:
        env: OPENAI_API_KEY
      served_models: [gpt-4o, gpt-4o-mini]
    - id: azure
      provider: openai
      base_url: https://acme.openai.azure.com/openai/v1
      secret_key_ref:
        env: OPENAI_API_KEY
      model: gpt-4o
  fallback:
    strategy: cost
    max_retries: 1
    retry_on: [5xx, timeout]
  circuit_breaker:
    failure_threshold: 3
    cooldown_seconds: 10
"""
MORE = """\
failover:
  model_mapping:
    gpt-4o: gpt-4o-mini
rate_limit_defaults:
  requests_per_minute: 600
  per_user:
    tokens_per_day: 100000
routing_policies:
  - name: routine
    departments: [team_engineering]
    aliases: {drafting: gpt-4o-mini}
    max_price_per_mtok: 5
    on_over_price: downgrade
    downgrade_to: gpt-4o-mini
  - name: legal-premium
    consumer_groups: [legal]
    premium_groups: [legal]
    premium_monthly_share_cap: 40
"""
LIMITS = """\
    rate_limits:
      rpm: 100
      tokens_per_day: 5000000
      max_parallel_requests: 10
      per_user: {requests_per_minute: 20}
"""


@pytest.fixture
def text(seed_text, org):
    """The seed with every new key: two targets, failover, a breaker, limits, policies."""
    for model, premium, price in (("gpt-4o", True, "10"), ("gpt-4o-mini", False, "0.6")):
        PriceFactory(
            organization=org,
            provider="openai",
            model=model,
            premium=premium,
            input_per_mtok=Decimal(price) / 4,
            output_per_mtok=Decimal(price),
        )
    seed = seed_text.replace(
        seed_text[seed_text.index("providers:") : seed_text.index("consumer")], PROVIDERS
    )
    seed = seed.replace(
        "    wallet_team_id: team_engineering\n", "    wallet_team_id: team_engineering\n" + LIMITS
    )
    return seed + MORE


def _apply(org, text, **kwargs):
    return config_apply(organization=org, text=text, actor="user:ana", via="config", **kwargs)


def test_the_new_keys_apply_are_reported_and_a_second_apply_changes_nothing(org, text):
    report = _apply(org, text)

    for line in (
        "changed providers.fallback acme",
        "changed providers.circuit_breaker acme",
        "changed failover.model_mapping acme",
        "changed rate_limit_defaults acme (requests_per_minute, per_user.tokens_per_day)",
        "changed routing_policies acme (legal-premium, routine)",
    ):
        assert line in report.lines()
    settings = GatewaySettings.objects.get(organization=org)
    assert settings.fallback == {
        "strategy": "cost",
        "max_retries": 1,
        "retry_on": ["5xx", "timeout"],
        "order": ["openai", "azure"],
    }
    assert settings.circuit_breaker == {
        "failure_threshold": 3,
        "window_seconds": 60.0,
        "cooldown_seconds": 10.0,
        "half_open_requests": 1,
    }
    assert settings.model_mapping == {"gpt-4o": ["gpt-4o-mini"]}
    assert [p["name"] for p in settings.routing_policies] == ["routine", "legal-premium"]
    assert settings.routing_policies[0]["max_price_per_mtok"] == "5"
    engineering = ConsumerGroup.objects.get(organization=org, name="engineering")
    assert (engineering.rpm_limit, engineering.tpd_limit, engineering.parallel_limit) == (
        100,
        5_000_000,
        10,
    )
    assert engineering.user_rate_limits == {"rpm": 20}
    org.refresh_from_db()
    assert org.rate_limit_defaults == {"rpm": 600, "per_user": {"tpd": 100_000}}
    assert org.targets.get(target_id="azure").served_models == ["gpt-4o"]
    audit = AuditLog.objects.filter(organization=org, action="gateway_settings.update")
    assert audit.count() == 4 and {row.via for row in audit} == {"config"}  # noqa: PT018

    rows = AuditLog.objects.count()
    assert _apply(org, text).lines()[0] == "no changes"
    assert AuditLog.objects.count() == rows


def test_providers_without_fallback_switch_it_off_and_a_file_without_the_sections_keeps_them(
    org, text, seed_text
):
    _apply(org, text)
    _apply(org, text.replace(PROVIDERS.split("  fallback:")[1], "").replace("  fallback:", ""))

    settings = GatewaySettings.objects.get(organization=org)
    assert (settings.fallback, settings.circuit_breaker) == ({}, {})
    assert settings.routing_policies  # `routing_policies` was in the file: still there

    before = GatewaySettings.objects.get(organization=org).routing_policies
    _apply(org, text.split("failover:")[0])  # no failover, defaults or policies sections
    assert GatewaySettings.objects.get(organization=org).routing_policies == before
    _apply(org, text.split("failover:")[0] + "routing_policies: []\n")
    assert GatewaySettings.objects.get(organization=org).routing_policies == []


def test_a_validation_says_what_would_change_and_writes_nothing(org, text):
    report = config_validate(organization=org, text=text, actor="a", via="api")

    assert "changed routing_policies acme (legal-premium, routine)" in report.lines()
    assert not GatewaySettings.objects.exists()


# (what is replaced, by what, the expected key path, the line's text, words of the message)
CASES = [
    (
        "      model: gpt-4o\n",
        "      model: gpt-4o\n      models: [gpt-4o]\n",
        "providers.targets[1].models",
        "      models: [gpt-4o]",
        "give one of models, served_models and model",
    ),
    (
        "    strategy: cost\n",
        "    strategy: fastest\n",
        "providers.fallback.strategy",
        "    strategy: fastest",
        "unknown value 'fastest'",
    ),
    (
        "    max_retries: 1\n",
        "    max_retries: 11\n",
        "providers.fallback.max_retries",
        "    max_retries: 11",
        "at most 10",
    ),
    (
        "    retry_on: [5xx, timeout]\n",
        "    retry_on: [5xx, 4xx]\n",
        "providers.fallback.retry_on[1]",
        "    retry_on: [5xx, 4xx]",
        "unknown value '4xx'",
    ),
    (
        "    max_retries: 1\n",
        "    retries: 1\n",
        "providers.fallback.retries",
        "    retries: 1",
        "unknown key",
    ),
    (
        "    failure_threshold: 3\n",
        "    failure_threshold: 0\n",
        "providers.circuit_breaker.failure_threshold",
        "    failure_threshold: 0",
        "at least 1",
    ),
    (
        "    cooldown_seconds: 10\n",
        "    cooldown_seconds: -1\n",
        "providers.circuit_breaker.cooldown_seconds",
        "    cooldown_seconds: -1",
        "greater than 0",
    ),
    (
        "    gpt-4o: gpt-4o-mini\n",
        "    gpt-4o: gpt-4o\n",
        "failover.model_mapping.gpt-4o",
        "    gpt-4o: gpt-4o",
        "cannot fall back to itself",
    ),
    (
        "    gpt-4o: gpt-4o-mini\n",
        "    gpt-4o: [gpt-4o-mini, gpt-5]\n",
        "failover.model_mapping.gpt-4o",
        "    gpt-4o: [gpt-4o-mini, gpt-5]",
        "no target of this organization serves gpt-5",
    ),
    ("  model_mapping:\n", "  model_map:\n", "failover.model_map", "  model_map:", "unknown key"),
    (
        "  requests_per_minute: 600\n",
        "  requests_per_minute: 0\n",
        "rate_limit_defaults.requests_per_minute",
        "  requests_per_minute: 0",
        "at least 1",
    ),
    (
        "  requests_per_minute: 600\n",
        "  requests_per_minute: 600\n  rpm: 600\n",
        "rate_limit_defaults.rpm",
        "  rpm: 600",
        "the same limit",
    ),
    (
        "    tokens_per_day: 100000\n",
        "    tokens_per_hour: 100000\n",
        "rate_limit_defaults.per_user.tokens_per_hour",
        "    tokens_per_hour: 100000",
        "unknown key",
    ),
    (
        "      tokens_per_day: 5000000\n",
        "      tokens_per_day: lots\n",
        "consumer_groups[0].rate_limits.tokens_per_day",
        "      tokens_per_day: lots",
        "expected an integer",
    ),
    (
        "      max_parallel_requests: 10\n",
        "      max_parallel_requests: 100001\n",
        "consumer_groups[0].rate_limits.max_parallel_requests",
        "      max_parallel_requests: 100001",
        "at most 100000",
    ),
    (
        "      per_user: {requests_per_minute: 20}\n",
        "      per_user: {per_user: {}}\n",
        "consumer_groups[0].rate_limits.per_user.per_user",
        "      per_user: {per_user: {}}",
        "unknown key",
    ),
    (
        "  - name: routine\n",
        "  - nom: routine\n",
        "routing_policies[0].nom",
        "  - nom: routine",
        "unknown key",
    ),
    (
        "    max_price_per_mtok: 5\n",
        "    max_price_per_mtok: 0.0000001\n",
        "routing_policies[0].max_price_per_mtok",
        "    max_price_per_mtok: 0.0000001",
        "at most 6 decimal places",
    ),
    (
        "    max_price_per_mtok: 5\n",
        "    max_price_per_mtok: cheap\n",
        "routing_policies[0].max_price_per_mtok",
        "    max_price_per_mtok: cheap",
        "expected a number",
    ),
    (
        "    downgrade_to: gpt-4o-mini\n",
        "",
        "routing_policies[0].on_over_price",
        "    on_over_price: downgrade",
        "needs downgrade_to",
    ),
    (
        "    premium_monthly_share_cap: 40\n",
        "    premium_monthly_share_cap: 150\n",
        "routing_policies[1].premium_monthly_share_cap",
        "    premium_monthly_share_cap: 150",
        "at most 100",
    ),
    (
        "    premium_groups: [legal]\n    premium_monthly_share_cap: 40\n",
        "",
        "routing_policies[1]",
        "  - name: legal-premium",
        "give at least one of",
    ),
    (
        "    consumer_groups: [legal]\n",
        "    consumer_groups: [legal, nobody]\n",
        "routing_policies[1].consumer_groups[1]",
        "    consumer_groups: [legal, nobody]",
        "no consumer group 'nobody'",
    ),
    (
        "    consumer_groups: [legal]\n",
        "    departments: [team_engineering]\n",
        "routing_policies[1].departments[0]",
        "    departments: [team_engineering]",
        "already in policy 'routine'",
    ),
    (
        "    aliases: {drafting: gpt-4o-mini}\n",
        "    aliases: {drafting: gpt-9}\n",
        "routing_policies[0].aliases.drafting",
        "    aliases: {drafting: gpt-9}",
        "no target of this organization serves gpt-9",
    ),
    (
        "    max_price_per_mtok: 5\n",
        "    max_price_per_mtok: 0.5\n",
        "routing_policies[0].downgrade_to",
        "    downgrade_to: gpt-4o-mini",
        "costs more than max_price_per_mtok",
    ),
    (
        "  - name: legal-premium\n",
        "  - name: routine\n",
        "routing_policies[1].name",
        "  - name: routine",
        "already defined on line",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "path", "line_text", "words"), CASES, ids=[c[2] for c in CASES]
)
def test_every_new_key_is_checked_with_its_path_and_line_and_nothing_changes(
    org, text, old, new, path, line_text, words
):
    assert old in text, old
    bad = text.replace(old, new, 1)
    before = tenancy_snapshot()

    with pytest.raises(ConfigError) as caught:
        _apply(org, bad)

    lines = bad.splitlines()
    line = len(lines) - lines[::-1].index(line_text)  # the last such line: the second of two
    assert (caught.value.path, caught.value.line) == (path, line), str(caught.value)
    assert words in caught.value.message
    assert tenancy_snapshot() == before
    assert not GatewaySettings.objects.exists()


def test_a_policy_cannot_name_another_organizations_group(org, outsider_org, text):
    _apply(
        outsider_org, without_providers(text.split("failover:")[0]).replace("kt_cg_", "kt_cg_out_")
    )
    bad = text.replace(
        "    consumer_groups: [legal]\n", "    consumer_groups: [legal, support-x]\n"
    )
    outsider_groups = {g.name for g in ConsumerGroup.objects.filter(organization=outsider_org)}
    assert "legal" in outsider_groups

    _apply(org, text)
    assert not GatewaySettings.objects.filter(organization=outsider_org).exists()
    with pytest.raises(ConfigError) as caught:
        _apply(org, bad)
    assert "no consumer group 'support-x'" in caught.value.message
