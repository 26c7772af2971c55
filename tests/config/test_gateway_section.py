"""The config file's `gateway:` section (gateway/config_section.py): what rate-limited groups
get while the rate-limit store is down, per organization."""

import pytest
from django.test import Client

from chargeback.config import config_apply
from chargeback.errors import ConfigError
from chargeback.models import AuditLog, Organization
from tests.config.conftest import tenancy_snapshot

pytestmark = pytest.mark.django_db

CLOSED = "gateway:\n  rate_limits_unavailable: closed\n"


def _apply(org, text):
    report = config_apply(organization=org, text=text, actor="user:ana", via="config")
    org.refresh_from_db()
    return report


def test_an_organization_fails_open_unless_its_file_says_closed(org, seed_text):
    assert org.rate_limits_unavailable == "open"

    report = _apply(org, seed_text + CLOSED)

    assert org.rate_limits_unavailable == "closed"
    assert "changed gateway acme (rate_limits_unavailable)" in report.lines()
    audit = AuditLog.objects.get(organization=org, action="organization.update")
    assert (audit.before, audit.after) == (
        {"rate_limits_unavailable": "open"},
        {"rate_limits_unavailable": "closed"},
    )
    assert (audit.actor, audit.via) == ("user:ana", "config")


def test_applying_the_same_choice_again_changes_nothing(org, seed_text):
    _apply(org, seed_text + CLOSED)
    audit_rows = AuditLog.objects.count()

    assert _apply(org, seed_text + CLOSED).text() == (
        "no changes\nwarning: providers.targets[0].secret_key_ref.env (line 6): OPENAI_API_KEY "
        "is not set in the server's environment; the gateway cannot call target openai until it is"
    )
    assert AuditLog.objects.count() == audit_rows


def test_a_line_left_out_means_open_and_a_file_without_the_section_leaves_it(org, seed_text):
    _apply(org, seed_text + CLOSED)
    _apply(org, seed_text)  # no `gateway:` section: not managed by this file
    assert org.rate_limits_unavailable == "closed"

    _apply(org, seed_text + "gateway: {}\n")
    assert org.rate_limits_unavailable == "open"


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        (
            "gateway:\n  rate_limits_unavailable: sometimes\n",
            "gateway.rate_limits_unavailable",
            "unknown value 'sometimes' (expected one of: open, closed)",
        ),
        (
            "gateway:\n  rate_limits_unavailable: true\n",
            "gateway.rate_limits_unavailable",
            "expected a string, got a boolean",
        ),
        (
            "gateway:\n  rate_limit_unavailable: closed\n",
            "gateway.rate_limit_unavailable",
            "unknown key (allowed here: rate_limits_unavailable)",
        ),
        ("gateway: closed\n", "gateway", "expected a mapping, got a string"),
    ],
)
def test_a_bad_value_names_its_key_path_and_line_and_changes_nothing(
    org, seed_text, section, path, message
):
    before = tenancy_snapshot()
    line = seed_text.count("\n") + (1 if section.startswith("gateway: ") else 2)

    with pytest.raises(ConfigError) as caught:
        _apply(org, seed_text + section)

    assert (caught.value.path, caught.value.line) == (path, line)
    assert caught.value.message == f"{path}: {message} (line {line})"
    assert tenancy_snapshot() == before


def test_the_api_applies_it_to_the_tokens_organization_only(
    org, admin_token, outsider_org, seed_text
):
    response = Client().post(
        "/v1/config/apply",
        data=seed_text + CLOSED,
        content_type="text/yaml",
        HTTP_AUTHORIZATION=f"Bearer {admin_token}",
    )

    assert response.status_code == 200
    assert Organization.objects.get(pk=org.pk).rate_limits_unavailable == "closed"
    assert Organization.objects.get(pk=outsider_org.pk).rate_limits_unavailable == "open"
