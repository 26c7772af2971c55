"""Every attack of issue 12 part 1, by the outsider's admin token or staff, through each way in:
`kt config apply` (a real process), `POST /v1/config/apply` and the admin (real HTTP against
the live server). Each is refused with a message naming the key path (and line) or the form
field, and changes nothing; nothing reaches the attacker's listener."""

from dataclasses import dataclass

import pytest

from chargeback.models import AuditLog, ConsumerGroup, ProviderTarget
from tests.factories import ConsumerGroupFactory, DepartmentFactory
from tests.trust.conftest import (
    VICTIM_ENV,
    VICTIM_ENV_VALUE,
    VICTIM_SECRET,
    VICTIM_SECRET_VALUE,
    admin_browser,
    api,
    form_errors,
    kt,
)

pytestmark = pytest.mark.django_db(transaction=True)

TARGET = """version: '1'
providers:
  targets:
    - id: steal
      provider: openai
{fields}"""


@dataclass(frozen=True)
class Attack:
    name: str
    fields: str  # the target's lines (or a whole file, for `file`)
    path: str
    line: int
    says: str
    admin: dict | None = None  # the same attack as admin form data, None: no admin way
    admin_field: str = ""
    file: str = ""

    def text(self, listener) -> str:
        body = self.file or TARGET.format(fields=self.fields)
        return body.replace("LISTENER", listener.url)


NOT_ALLOWED = (
    "may not be used by this organization (the platform operator allows no environment variable"
)
ATTACKS = [
    Attack(
        "another_organizations_provider_key_from_the_environment",
        f"      secret_key_ref: {{env: {VICTIM_ENV}}}\n      base_url: https://api.example.com/v1\n",
        "providers.targets[0].secret_key_ref.env",
        6,
        f"the environment variable {VICTIM_ENV} {NOT_ALLOWED}",
        admin={"secret_env": VICTIM_ENV, "base_url": "https://api.example.com/v1"},
        admin_field="secret_env",
    ),
    Attack(
        "the_servers_secret_key_from_the_environment",
        "      secret_key_ref: {env: SECRET_KEY}\n",
        "providers.targets[0].secret_key_ref.env",
        6,
        f"the environment variable SECRET_KEY {NOT_ALLOWED}",
        admin={"secret_env": "SECRET_KEY"},
        admin_field="secret_env",
    ),
    Attack(
        "another_organizations_stored_secret",
        f"      secret_key_ref: {{secret: {VICTIM_SECRET}}}\n",
        "providers.targets[0].secret_key_ref.secret",
        6,
        f"this organization has no provider secret '{VICTIM_SECRET}'",
    ),
    Attack(
        "the_attackers_listener_over_http",
        "      base_url: LISTENER/v1\n",
        "providers.targets[0].base_url",
        6,
        "uses plain http; the gateway connects only to public addresses over https",
        admin={"base_url": "LISTENER/v1"},
        admin_field="base_url",
    ),
    Attack(
        "cloud_metadata",
        "      base_url: https://169.254.169.254/latest/meta-data\n",
        "providers.targets[0].base_url",
        6,
        "169.254.169.254 is a link-local address",
        admin={"base_url": "https://169.254.169.254/latest/meta-data"},
        admin_field="base_url",
    ),
    Attack(
        "the_database_port_on_loopback",
        "      base_url: https://127.0.0.1:5432\n",
        "providers.targets[0].base_url",
        6,
        "127.0.0.1 is a loopback address",
        admin={"base_url": "https://127.0.0.1:5432"},
        admin_field="base_url",
    ),
    Attack(
        "loopback_spelt_as_a_number",
        "      base_url: https://2130706433/v1\n",
        "providers.targets[0].base_url",
        6,
        "2130706433 resolves to a loopback address",
    ),
    Attack(
        "the_servers_secret_key_as_a_group_key",
        "",
        "consumer_groups[0].api_key_ref.env",
        4,
        f"the environment variable SECRET_KEY {NOT_ALLOWED}",
        file="version: '1'\nconsumer_groups:\n  - name: leak\n    api_key_ref: {env: SECRET_KEY}\n"
        "    wallet_team_id: team_leak\n",
    ),
]
IDS = [a.name for a in ATTACKS]


def assert_nothing_happened(outsider_org, listener):
    assert not ProviderTarget.objects.filter(organization=outsider_org).exists()
    assert not ConsumerGroup.objects.filter(organization=outsider_org).exists()
    assert not AuditLog.objects.filter(organization=outsider_org).exists()
    assert listener.seen.connections == 0


@pytest.mark.parametrize("attack", ATTACKS, ids=IDS)
def test_an_attack_through_kt_config_apply_is_refused(
    attack, live_server, victim, outsider_org, outsider_token, listener, tmp_path
):
    path = tmp_path / "attack.yaml"
    path.write_text(attack.text(listener))

    result = kt(live_server, outsider_token, "config", "apply", str(path))

    assert result.returncode == 1
    assert result.stderr.startswith(f"kt: {path}: {attack.path}: "), result.stderr
    assert attack.says in result.stderr
    assert result.stderr.rstrip().endswith(f"(line {attack.line})")
    for secret in (VICTIM_ENV_VALUE, VICTIM_SECRET_VALUE):
        assert secret not in result.stdout + result.stderr
    assert_nothing_happened(outsider_org, listener)


@pytest.mark.parametrize("attack", ATTACKS, ids=IDS)
def test_an_attack_through_the_api_is_refused(
    attack, live_server, victim, outsider_org, outsider_token, listener
):
    with api(live_server, outsider_token) as client:
        response = client.post(
            "/v1/config/apply",
            content=attack.text(listener),
            headers={"Content-Type": "text/yaml"},
        )

    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["path"], body["line"]) == (
        "invalid_config",
        attack.path,
        attack.line,
    )
    assert attack.says in body["detail"]
    assert_nothing_happened(outsider_org, listener)


ADMIN_ATTACKS = [a for a in ATTACKS if a.admin is not None]


@pytest.mark.parametrize("attack", ADMIN_ATTACKS, ids=[a.name for a in ADMIN_ATTACKS])
def test_an_attack_through_the_admin_is_refused_on_its_field(
    attack, live_server, victim, outsider_org, listener
):
    browser = admin_browser(live_server, outsider_org)
    data = {"organization": outsider_org.pk, "target_id": "steal", "provider": "openai"}
    data.update({k: v.replace("LISTENER", listener.url) for k, v in attack.admin.items()})
    data.update({"served_models": "[]", "options": "{}"})

    response = browser.post("/admin/chargeback/providertarget/add/", data)

    assert response.status_code == 200  # the form again, not a redirect to the saved row
    errors = form_errors(response.text)
    assert list(errors) == [attack.admin_field], errors
    assert attack.says in errors[attack.admin_field]
    assert_nothing_happened(outsider_org, listener)


def test_the_victims_secret_is_not_even_a_choice_in_the_outsiders_admin(
    live_server, victim, outsider_org
):
    browser = admin_browser(live_server, outsider_org)
    page = browser.client.get("/admin/chargeback/providertarget/add/")
    assert page.status_code == 200
    assert VICTIM_SECRET not in page.text
    secret_pk = victim.provider_secrets.get().pk

    response = browser.post(
        "/admin/chargeback/providertarget/add/",
        {
            "organization": outsider_org.pk,
            "target_id": "steal",
            "provider": "openai",
            "secret": secret_pk,
            "served_models": "[]",
            "options": "{}",
        },
    )

    assert "secret" in form_errors(response.text)
    assert not ProviderTarget.objects.filter(organization=outsider_org).exists()


def test_a_key_clash_says_nothing_about_the_other_organization(
    live_server, victim, outsider_org, outsider_token, tmp_path
):
    ConsumerGroupFactory(
        department=DepartmentFactory(organization=victim, team_id="team_engineering"),
        name="engineering",
        key="kt_cg_engineering_prod",
    )
    path = tmp_path / "clash.yaml"
    path.write_text(
        "version: '1'\nconsumer_groups:\n  - name: mine\n    api_key: kt_cg_engineering_prod\n"
        "    wallet_team_id: team_mine\n"
    )

    result = kt(live_server, outsider_token, "config", "apply", str(path))

    assert result.stderr == (
        f"kt: {path}: consumer_groups[0].api_key: this key cannot be used; choose another "
        "(line 4)\n"
    )
    assert not ConsumerGroup.objects.filter(organization=outsider_org).exists()


def test_a_key_clash_within_the_organization_names_the_group(live_server, victim, admin_token):
    text = (
        "version: '1'\nconsumer_groups:\n  - name: one\n    api_key: kt_cg_shared_key_1234\n"
        "    wallet_team_id: team_a\n"
    )
    with api(live_server, admin_token) as client:
        assert client.post("/v1/config/apply", json={"yaml": text}).status_code == 200
        # A second group with the same key, the first one left out of the file (deactivated).
        again = text.replace("name: one", "name: two")
        response = client.post("/v1/config/apply", json={"yaml": again})

    assert response.status_code == 400
    assert "this key is already used by consumer group 'one'" in response.json()["detail"]
