"""The operator's rules: which environment variables an organization may name (default: none),
and which base URLs any target may use (default: https to public addresses)."""

import pytest
from django.core.management import CommandError, call_command

from chargeback import upstream
from chargeback.config import config_apply
from chargeback.env_refs import env_ref_allowed
from chargeback.errors import ConfigError
from chargeback.models import AuditLog, ConsumerGroup, Organization
from tests.config.conftest import SEED_FILE
from tests.trust.conftest import admin_browser

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("patterns", "name", "allowed"),
    [
        ([], "OPENAI_API_KEY", False),
        (["OPENAI_API_KEY"], "OPENAI_API_KEY", True),
        (["OPENAI_API_KEY"], "OPENAI_API_KEY_2", False),
        (["ACME_*"], "ACME_OPENAI_KEY", True),
        (["ACME_*"], "GLOBEX_OPENAI_KEY", False),
        (["KT_*"], "KT_SECRETS_KEY", False),  # the platform's own, whatever the pattern
        (["SECRET_KEY"], "SECRET_KEY", False),
        (["DATABASE_URL"], "DATABASE_URL", False),
    ],
)
def test_only_names_the_operator_allows_may_be_named(patterns, name, allowed):
    assert env_ref_allowed(patterns, name) is allowed


def test_an_allowed_but_unset_group_key_variable_says_it_is_not_set(org, monkeypatch):
    """Only after the name is found allowed does the apply look at the variable: a refused name
    says nothing about whether the server has it."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    text = (
        "version: '1'\nconsumer_groups:\n  - name: ops\n    api_key_ref: {env: OPENAI_API_KEY}\n"
        "    wallet_team_id: team_ops\n"
    )
    with pytest.raises(ConfigError) as caught:
        config_apply(organization=org, text=text, actor="t", via="api")
    assert caught.value.message == (
        "consumer_groups[0].api_key_ref.env: environment variable OPENAI_API_KEY is not set (line 4)"
    )
    refused = text.replace("OPENAI_API_KEY", "PATH")
    with pytest.raises(ConfigError) as caught:
        config_apply(organization=org, text=refused, actor="t", via="api")
    assert "PATH may not be used by this organization" in caught.value.message


def test_the_operator_command_creates_allows_and_shows(capsys):
    call_command(
        "org_env_refs", "--org", "globex", "--create-org", "Globex", "--allow", "OPENAI_API_KEY"
    )
    globex = Organization.objects.get(slug="globex")
    assert globex.env_refs_allowed == ["OPENAI_API_KEY"]
    config_apply(organization=globex, text=SEED_FILE.read_text(), actor="t", via="config")
    assert ConsumerGroup.objects.filter(organization=globex).count() == 3

    call_command("org_env_refs", "--org", "globex", "--deny", "OPENAI_API_KEY")
    out = capsys.readouterr().out
    assert "globex: allowed: (none)" in out
    assert "target openai names OPENAI_API_KEY: NOT allowed" in out
    assert (
        AuditLog.objects.filter(organization=globex, action="organization.env_refs_allowed").count()
        == 2
    )
    with pytest.raises(CommandError, match="PREFIX_"):
        call_command("org_env_refs", "--org", "globex", "--allow", "*")


@pytest.mark.django_db(transaction=True)
def test_a_tenant_owner_cannot_change_the_allow_list_in_the_admin(live_server, org):
    browser = admin_browser(live_server, org)
    page = f"/admin/chargeback/organization/{org.pk}/change/"
    before = list(org.env_refs_allowed)
    assert 'name="env_refs_allowed"' not in browser.client.get(page).text  # shown read-only
    saved = browser.post(
        page,
        {
            "name": "Acme Renamed",
            "slug": "acme",
            "time_zone": "UTC",
            "currency": "USD",
            "finance_emails": "[]",
            "cost_tracking_enabled": "on",
            "wallet_enforcement": "on",
            "rate_limits_unavailable": "open",
            "allocation_policy": "auto_fund",
            "env_refs_allowed": '["SECRET_KEY", "KT_VICTIM_*"]',
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
    )
    assert saved.status_code == 302, saved.text[:2000]
    org.refresh_from_db()
    assert org.name == "Acme Renamed"  # the owner's edit went through...
    assert org.env_refs_allowed == before  # ...without the operator's field


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://10.0.0.5/v1", "10.0.0.5 is a private address"),
        ("https://192.168.1.10", "is a private address"),
        ("https://100.100.100.200/latest", "not publicly routable"),  # Alibaba's metadata
        ("https://[::1]:8080", "is a loopback address"),
        ("https://[::ffff:127.0.0.1]/v1", "is a loopback address"),
        ("https://[fd00:ec2::254]/latest", "is a private address"),  # AWS metadata, IPv6
        ("https://[fe80::1]/", "link-local"),
        ("https://0.0.0.0:8000", "unspecified"),
        ("https://224.0.0.1", "multicast"),
        ("https://localhost:5432", "localhost resolves to a loopback address"),
        ("http://api.example.com/v1", "uses plain http"),
        ("https://user:pw@api.example.com/v1", "must not contain a user name or password"),
        ("ftp://api.example.com", "not an http(s) URL"),
    ],
)
def test_base_urls_the_gateway_may_not_call_are_refused_with_the_reason(url, says):
    problem = upstream.policy().url_problem(url)
    assert problem is not None
    assert says in problem, problem
    assert "KT_UPSTREAM_ALLOW_HOSTS" in problem or "user name" in problem or "http(s)" in problem


def test_the_operator_can_allow_a_host_a_network_or_plain_http(settings):
    assert upstream.policy().url_problem("https://8.8.8.8/v1") is None  # public https: fine
    settings.KT_UPSTREAM_ALLOW_HOSTS = ["ollama", "10.0.0.7:8000"]
    assert upstream.policy().url_problem("http://ollama:11434/v1") is None
    assert upstream.policy().url_problem("http://10.0.0.7:8000/v1") is None
    assert upstream.policy().url_problem("http://10.0.0.7:8001/v1") is not None  # other port
    settings.KT_UPSTREAM_ALLOW_NETWORKS = ["10.1.0.0/16"]
    assert upstream.policy().url_problem("https://10.1.2.3/v1") is None
    assert upstream.policy().url_problem("https://10.2.0.1/v1") is not None
    settings.KT_UPSTREAM_ALLOW_HTTP = True
    assert upstream.policy().url_problem("http://8.8.8.8/v1") is None
    assert upstream.policy().url_problem("http://127.0.0.1/v1") is not None  # still an address rule
