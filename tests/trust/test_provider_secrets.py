"""Stored provider secrets: entered once, encrypted at rest, never shown again, rotatable, the
organization's alone; through the API, `kt` and the admin, over real HTTP."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from chargeback import secretbox
from chargeback.models import AuditLog, ProviderSecret
from chargeback.provider_secrets import provider_secret_set
from tests.config.conftest import database_text
from tests.conftest import TEST_SECRETS_KEY
from tests.trust.conftest import admin_browser, api, form_errors, kt

pytestmark = pytest.mark.django_db(transaction=True)

VALUE = "sk-proj-first-0123456789abcdefghijWXYZ"
ROTATED = "sk-proj-second-0123456789abcdefghijQRST"


def test_a_secret_round_trips_through_the_api_and_is_never_shown(
    live_server, org, admin_token, outsider_token
):
    with api(live_server, admin_token) as client:
        created = client.post("/v1/provider-secrets", json={"name": "openai-prod", "value": VALUE})
        listed = client.get("/v1/provider-secrets")
        one = client.get("/v1/provider-secrets/openai-prod")
        rotated = client.post(
            "/v1/provider-secrets", json={"name": "openai-prod", "value": f" {ROTATED}\n"}
        )

    assert created.status_code == 201
    assert created.json()["hint"] == "WXYZ"
    assert created.json()["rotated_at"] is None
    assert listed.json()["count"] == 1
    assert rotated.status_code == 200
    assert rotated.json()["hint"] == "QRST"
    assert rotated.json()["rotated_at"] is not None
    for response in (created, listed, one, rotated):
        assert VALUE not in response.text
        assert ROTATED not in response.text
        assert "ciphertext" not in response.text
        assert "value" not in response.text
    # Encrypted at rest: no table holds the value; the key decrypts the rotated one.
    text = database_text()
    assert VALUE not in text
    assert ROTATED not in text
    secret = ProviderSecret.objects.get(organization=org)
    assert secretbox.unseal(
        token=secret.ciphertext, organization_id=org.pk, name="openai-prod"
    ) == (ROTATED)
    actions = list(
        AuditLog.objects.filter(organization=org, object_type="chargeback.ProviderSecret")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["provider_secret.create", "provider_secret.rotate"]
    assert ROTATED[:-4] not in str(list(AuditLog.objects.values_list("after", flat=True)))

    # The outsider: a 404 like a secret that does not exist, and its list is empty.
    with api(live_server, outsider_token) as client:
        assert client.get("/v1/provider-secrets/openai-prod").status_code == 404
        assert client.delete("/v1/provider-secrets/openai-prod").status_code == 404
        assert client.get("/v1/provider-secrets").json()["count"] == 0
    assert ProviderSecret.objects.filter(organization=org).exists()


def test_bad_values_and_names_are_refused_on_their_field(live_server, org, admin_token):
    with api(live_server, admin_token) as client:
        spaced = client.post("/v1/provider-secrets", json={"name": "x", "value": "sk a\r\nX: y"})
        named = client.post("/v1/provider-secrets", json={"name": "bad name", "value": VALUE})
        extra = client.post(
            "/v1/provider-secrets", json={"name": "x", "value": VALUE, "hint": "1234"}
        )

    assert spaced.status_code == 400
    assert list(spaced.json()) == ["value"]
    assert named.status_code == 400
    assert list(named.json()) == ["name"]
    assert extra.status_code == 400
    assert list(extra.json()) == ["hint"]
    assert not ProviderSecret.objects.exists()


def test_without_kt_secrets_key_storing_is_a_clear_503(live_server, org, admin_token, settings):
    settings.KT_SECRETS_KEY = ""
    with api(live_server, admin_token) as client:
        response = client.post("/v1/provider-secrets", json={"name": "x", "value": VALUE})

    assert response.status_code == 503
    assert response.json()["code"] == "not_configured"
    assert "KT_SECRETS_KEY" in response.json()["detail"]


def test_a_secret_in_use_cannot_be_deleted_until_no_target_uses_it(live_server, org, admin_token):
    provider_secret_set(organization=org, name="openai-prod", value=VALUE, actor="t", via="api")
    use = (
        "version: '1'\nproviders:\n  targets:\n    - id: openai\n      provider: openai\n"
        "      secret_key_ref: {secret: openai-prod}\n"
    )
    with api(live_server, admin_token) as client:
        applied = client.post("/v1/config/apply", json={"yaml": use})
        refused = client.delete("/v1/provider-secrets/openai-prod")
        shown = client.get("/v1/provider-secrets/openai-prod").json()
        client.post("/v1/config/apply", json={"yaml": "version: '1'\nproviders:\n  targets: []\n"})
        deleted = client.delete("/v1/provider-secrets/openai-prod")

    assert applied.status_code == 200, applied.text
    assert refused.status_code == 409
    assert "used by target(s) openai" in refused.json()["detail"]
    assert shown["targets"] == ["openai"]
    assert deleted.status_code == 204
    assert not ProviderSecret.objects.exists()


def test_kt_sets_rotates_lists_and_deletes_without_echoing_the_value(live_server, org, admin_token):
    stored = kt(live_server, admin_token, "provider-secrets", "set", "openai-prod", stdin=VALUE)
    rotated = kt(
        live_server, admin_token, "provider-secrets", "set", "openai-prod", stdin=ROTATED + "\n"
    )
    listed = kt(live_server, admin_token, "provider-secrets", "list")
    deleted = kt(live_server, admin_token, "provider-secrets", "delete", "openai-prod")
    gone = kt(live_server, admin_token, "provider-secrets", "show", "openai-prod")

    assert stored.stdout == "stored provider secret openai-prod (…WXYZ)\n", stored.stderr
    assert rotated.stdout == "rotated provider secret openai-prod (…QRST)\n"
    assert listed.stdout.startswith("openai-prod ")
    assert "…QRST" in listed.stdout
    assert deleted.stdout == "deleted provider secret openai-prod\n"
    assert gone.returncode == 1
    assert "404" in gone.stderr
    for result in (stored, rotated, listed, deleted):
        assert VALUE not in result.stdout + result.stderr
        assert ROTATED not in result.stdout + result.stderr
    row = AuditLog.objects.filter(action="provider_secret.rotate").get()
    assert row.via == "cli"


def test_the_admin_form_is_write_only(live_server, org):
    browser = admin_browser(live_server, org)
    add = "/admin/chargeback/providersecret/add/"
    empty = browser.post(add, {"organization": org.pk, "name": "openai-prod", "value": ""})
    assert list(form_errors(empty.text)) == ["value"]

    saved = browser.post(add, {"organization": org.pk, "name": "openai-prod", "value": VALUE})
    assert saved.status_code == 302
    secret = ProviderSecret.objects.get(organization=org, name="openai-prod")
    change = f"/admin/chargeback/providersecret/{secret.pk}/change/"
    page = browser.client.get(change)
    assert VALUE not in page.text
    assert secret.ciphertext not in page.text
    assert "…WXYZ" in page.text

    kept = browser.post(change, {"value": ""})
    assert kept.status_code == 302
    secret.refresh_from_db()
    assert secret.rotated_at is None
    rotated = browser.post(change, {"value": ROTATED})
    assert rotated.status_code == 302
    secret.refresh_from_db()
    assert secret.hint == "QRST"
    assert secret.rotated_at is not None
    assert [
        row.via for row in AuditLog.objects.filter(object_type="chargeback.ProviderSecret")
    ] == [
        "admin",
        "admin",
    ]
    assert ROTATED not in database_text()


def test_the_encryption_key_rotates_without_losing_a_secret(org, settings, capsys):
    provider_secret_set(organization=org, name="openai-prod", value=VALUE, actor="t", via="api")
    new_key = Fernet.generate_key().decode()
    settings.KT_SECRETS_KEY = f"{new_key},{TEST_SECRETS_KEY}"

    call_command("secrets_key", "rotate")

    assert "re-encrypted 1 provider secret" in capsys.readouterr().out
    settings.KT_SECRETS_KEY = new_key  # the old key is gone
    secret = ProviderSecret.objects.get()
    assert secretbox.unseal(token=secret.ciphertext, organization_id=org.pk, name=secret.name) == (
        VALUE
    )


def test_a_ciphertext_copied_to_another_organization_does_not_open_there(org, outsider_org):
    secret, _ = provider_secret_set(
        organization=org, name="openai-prod", value=VALUE, actor="t", via="api"
    )
    with pytest.raises(secretbox.SecretUnreadable):
        secretbox.unseal(token=secret.ciphertext, organization_id=outsider_org.pk, name=secret.name)
