"""A bad file is refused with the key path and line of the problem, and changes nothing."""

import pytest

from chargeback.config import config_apply
from chargeback.errors import ConfigError
from tests.config.conftest import tenancy_snapshot, without_providers

pytestmark = pytest.mark.django_db


def broken(seed: str, old: str, new: str) -> str:
    assert old in seed, old
    return seed.replace(old, new, 1)


CASES = [
    # id, (old, new), expected path, expected line, words in the message
    (
        "yaml_syntax",
        ("  - name: support\n", "  - name: [support\n"),
        "",
        13,
        "YAML syntax error",
    ),
    (
        "unknown_key",
        ("    wallet_team_id: team_support\n", "    wallet_team_id: team_support\n    walet: x\n"),
        "consumer_groups[1].walet",
        15,
        "unknown key",
    ),
    (
        "missing_api_key",
        ("    api_key: kt_cg_support_prod\n", ""),
        "consumer_groups[1].api_key",
        12,
        "required key is missing",
    ),
    (
        "missing_wallet_team_id",
        ("    wallet_team_id: team_support\n", ""),
        "consumer_groups[1].wallet_team_id",
        12,
        "required key is missing",
    ),
    (
        "wallet_enforcement_not_a_boolean",
        ("wallet_enforcement: true", "wallet_enforcement: maybe"),
        "cost_tracking.wallet_enforcement",
        20,
        "expected true or false, got a string",
    ),
    (
        "duplicate_group_name",
        ("  - name: legal\n", "  - name: support\n"),
        "consumer_groups[2].name",
        15,
        "already defined on line 12",
    ),
    (
        "duplicate_group_key",
        ("api_key: kt_cg_legal_prod", "api_key: kt_cg_support_prod"),
        "consumer_groups[2].api_key",
        16,
        "already given to consumer group 'support'",
    ),
    (
        "env_in_api_key_ref_not_allowed",
        ("api_key: kt_cg_legal_prod", "api_key_ref: {env: KT_SURELY_UNSET_VARIABLE}"),
        "consumer_groups[2].api_key_ref.env",
        16,
        "KT_SURELY_UNSET_VARIABLE may not be used by this organization",
    ),
    (
        "both_api_key_and_ref",
        (
            "    api_key: kt_cg_legal_prod\n",
            "    api_key: kt_cg_legal_prod\n    api_key_ref: {env: HOME}\n",
        ),
        "consumer_groups[2].api_key_ref",
        17,
        "not both",
    ),
    (
        "unknown_provider",
        ("      provider: openai\n", "      provider: bedrock\n"),
        "providers.targets[0].provider",
        5,
        "unknown value 'bedrock'",
    ),
    (
        "duplicate_mapping_key",
        ("    wallet_team_id: team_legal\n", "    wallet_team_id: team_legal\n    name: x\n"),
        "consumer_groups[2].name",
        18,
        "duplicate key",
    ),
    (
        "rate_limit_not_positive",
        (
            "    wallet_team_id: team_engineering\n",
            "    wallet_team_id: team_engineering\n    rate_limits: {rpm: 0}\n",
        ),
        "consumer_groups[0].rate_limits.rpm",
        12,
        "at least 1",
    ),
    (
        "key_too_short",
        ("api_key: kt_cg_legal_prod", "api_key: short"),
        "consumer_groups[2].api_key",
        16,
        "too short",
    ),
    (
        "unsupported_version",
        ("version: '1'", "version: '2'"),
        "version",
        1,
        "unsupported version",
    ),
    (
        "groups_not_a_list",
        ("consumer_groups:\n", "consumer_groups: engineering\nx_unused:\n"),
        "consumer_groups",
        8,
        "expected a list, got a string",
    ),
    (
        "base_url_not_a_url",
        ("      provider: openai\n", "      provider: openai\n      base_url: localhost:8000\n"),
        "providers.targets[0].base_url",
        6,
        "not an http(s) URL",
    ),
]


@pytest.fixture
def outsider_applied(outsider_org, seed_text):
    """The outsider applied the seed's groups with keys of its own: the same group names, the
    same team_ids. A bad file of `org` must neither touch nor mention any of it."""
    text = without_providers(seed_text).replace("kt_cg_", "kt_cg_outsider_")
    config_apply(organization=outsider_org, text=text, actor="user:olga", via="config")
    return outsider_org


def assert_says_nothing_of_the_outsider(message: str) -> None:
    for word in ("outsider", "olga", "Outsider"):
        assert word not in message


@pytest.mark.parametrize(
    ("change", "path", "line", "words"),
    [pytest.param(change, path, line, words, id=name) for name, change, path, line, words in CASES],
)
def test_a_bad_file_names_the_key_path_and_line_and_changes_nothing(
    org, seed_text, outsider_applied, change, path, line, words
):
    text = broken(seed_text, *change)
    before = tenancy_snapshot()  # the outsider's rows included

    with pytest.raises(ConfigError) as caught:
        config_apply(organization=org, text=text, actor="user:ana", via="config")

    error = caught.value
    assert (error.path, error.line) == (path, line)
    assert words in error.message
    assert f"(line {line})" in error.message
    assert "\n" not in error.message
    assert_says_nothing_of_the_outsider(error.message)
    assert tenancy_snapshot() == before


def test_a_key_another_organization_uses_is_refused_without_naming_whose_it_is(
    org, seed_text, outsider_applied
):
    # The outsider's legal group answers to this key; org's file gives it to its engineering.
    text = broken(
        seed_text, "api_key: kt_cg_engineering_prod", "api_key: kt_cg_outsider_legal_prod"
    )
    before = tenancy_snapshot()

    with pytest.raises(ConfigError) as caught:
        config_apply(organization=org, text=text, actor="user:ana", via="config")

    error = caught.value
    assert (error.path, error.line) == ("consumer_groups[0].api_key", 10)
    assert_says_nothing_of_the_outsider(error.message)
    assert "legal" not in error.message  # not the group, not its team
    assert "kt_cg_" not in error.message  # nor the key itself
    assert tenancy_snapshot() == before


def test_a_missing_version_is_refused(org):
    with pytest.raises(ConfigError) as caught:
        config_apply(
            organization=org, text="cost_tracking: {enabled: true}\n", actor="a", via="config"
        )
    assert (caught.value.path, caught.value.line) == ("version", 1)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a list\n", "just text\n"])
def test_an_empty_or_shapeless_file_is_refused(org, text):
    with pytest.raises(ConfigError):
        config_apply(organization=org, text=text, actor="a", via="config")


def test_a_python_tag_is_refused_not_run(org):
    text = "version: '1'\ncost_tracking: !!python/object/apply:os.system ['true']\n"
    with pytest.raises(ConfigError) as caught:
        config_apply(organization=org, text=text, actor="a", via="config")
    assert caught.value.line == 2
