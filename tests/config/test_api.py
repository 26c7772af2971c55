import json

import pytest
from django.test import Client

from chargeback.models import AuditLog, ConsumerGroup, Department
from tests.config.conftest import tenancy_snapshot, without_providers

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return Client()


def post(client, path, token, body, content_type="text/yaml", **extra):
    return client.post(
        path, data=body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {token}", **extra
    )


def test_it_applies_a_yaml_body_to_the_tokens_organization(client, org, admin_token, seed_text):
    response = post(client, "/v1/config/apply", admin_token, seed_text)

    assert response.status_code == 200
    body = response.json()
    assert body["changed"] is True
    assert body["dry_run"] is False
    assert {"action": "created", "kind": "consumer_group", "name": "legal", "fields": []} in body[
        "changes"
    ]
    assert ConsumerGroup.objects.filter(organization=org).count() == 3
    assert {(r.actor, r.via) for r in AuditLog.objects.filter(organization=org)} == {
        ("token:kt_admin_acm", "api")
    }


def test_it_accepts_application_yaml_and_json(client, org, admin_token, seed_text):
    response = post(client, "/v1/config/apply", admin_token, seed_text, "application/yaml")
    assert response.status_code == 200
    assert response.json()["changed"] is True
    response = post(
        client, "/v1/config/apply", admin_token, json.dumps({"yaml": seed_text}), "application/json"
    )
    assert response.status_code == 200
    assert response.json()["report"] == (
        "no changes\nwarning: providers.targets[0].secret_key_ref.env (line 6): OPENAI_API_KEY "
        "is not set in the server's environment; the gateway cannot call target openai until it is"
    )


def test_validate_reports_what_would_change_and_writes_nothing(client, org, admin_token, seed_text):
    before = tenancy_snapshot()

    response = post(client, "/v1/config/validate", admin_token, seed_text)

    assert response.status_code == 200
    assert response.json()["dry_run"] is True
    assert "created department team_legal" in response.json()["report"]
    assert tenancy_snapshot() == before


def test_apply_dry_run_writes_nothing(client, org, admin_token, seed_text):
    response = post(client, "/v1/config/apply?dry_run=true", admin_token, seed_text)

    assert response.status_code == 200
    assert response.json()["changed"] is True
    assert not Department.objects.exists()


def test_a_bad_file_is_a_400_with_path_and_line(client, org, admin_token, seed_text):
    text = seed_text.replace("    wallet_team_id: team_support\n", "")

    for endpoint in ("/v1/config/validate", "/v1/config/apply"):
        response = post(client, endpoint, admin_token, text)
        assert response.status_code == 400
        assert response.json() == {
            "detail": "consumer_groups[1].wallet_team_id: required key is missing (line 12)",
            "code": "invalid_config",
            "path": "consumer_groups[1].wallet_team_id",
            "line": 12,
        }
    assert not Department.objects.exists()


def test_json_without_yaml_is_a_400(client, org, admin_token):
    response = post(client, "/v1/config/apply", admin_token, '{"yml": "x"}', "application/json")
    assert response.status_code == 400
    assert "yaml" in response.json()


def test_it_needs_an_admin_token(client, org, seed_text):
    assert post(client, "/v1/config/apply", "kt_admin_wrong_token", seed_text).status_code == 401
    response = client.post("/v1/config/apply", data=seed_text, content_type="text/yaml")
    assert response.status_code in {401, 403}
    assert not Department.objects.exists()


def test_an_outsider_token_only_touches_its_own_organization(
    client, org, outsider_org, admin_token, outsider_token, seed_text
):
    post(client, "/v1/config/apply", admin_token, seed_text)
    acme_before = {
        model: list(model.objects.filter(organization=org).order_by("pk").values())
        for model in (Department, ConsumerGroup, AuditLog)
    }
    their_file = (
        "version: '1'\nconsumer_groups:\n  - name: engineering\n"
        "    api_key: kt_cg_outsider_engineering\n    wallet_team_id: team_engineering\n"
        "cost_tracking:\n  wallet_enforcement: false\n"
    )

    response = post(client, "/v1/config/apply", outsider_token, their_file)

    assert response.status_code == 200
    assert ConsumerGroup.objects.get(organization=outsider_org).name == "engineering"
    assert Department.objects.filter(organization=outsider_org).count() == 1
    org.refresh_from_db()
    assert org.wallet_enforcement is True
    for model, rows in acme_before.items():
        assert list(model.objects.filter(organization=org).order_by("pk").values()) == rows
    # An empty group list from the outsider deactivates its groups, never acme's.
    post(client, "/v1/config/apply", outsider_token, "version: '1'\nconsumer_groups: []\n")
    assert ConsumerGroup.objects.filter(organization=org, is_active=True).count() == 3


def test_the_outsider_cannot_take_a_key_acme_uses(
    client, org, outsider_org, admin_token, outsider_token, seed_text
):
    post(client, "/v1/config/apply", admin_token, seed_text)

    response = post(client, "/v1/config/apply", outsider_token, without_providers(seed_text))

    assert response.status_code == 400
    assert response.json()["path"] == "consumer_groups[0].api_key"
    # Says nothing about who has it (issue 12): not "another organization", not a name.
    assert response.json()["detail"] == (
        "consumer_groups[0].api_key: this key cannot be used; choose another (line 4)"
    )
    assert not Department.objects.filter(organization=outsider_org).exists()


def test_kt_is_recorded_as_the_cli(client, org, admin_token, seed_text):
    post(client, "/v1/config/apply", admin_token, seed_text, HTTP_X_KT_CLIENT="kt/1")

    assert set(AuditLog.objects.filter(organization=org).values_list("via", flat=True)) == {"cli"}
