"""`GET /v1/wallets/balance`: the cascade of a consumer-group key, or of a team / end user with
the admin token; `kt wallets balance` prints it. Never another organization's wallets."""

from decimal import Decimal

import pytest

from tests.factories import ConsumerGroupFactory
from wallets import services

from .test_cli import kt

KEY = "kt_cg_engineering_prod"


def _setup(org, engineering):
    ConsumerGroupFactory(department=engineering, name="engineering", key=KEY)
    services.wallet_allocate(department=engineering, amount=Decimal("2.50000001"), currency="USD")
    services.wallet_allocate(
        department=engineering, amount=Decimal("0.00000001"), currency="USD", user_ref="alice"
    )
    services.wallet_credit(organization=org, amount=Decimal("100"), currency="USD")
    services.wallet_adjust(
        wallet=services.wallet_for_user(organization=org, user_ref="alice"),
        amount=Decimal("-0.00000001"),
        reason="spent elsewhere",
    )


def _scopes(body):
    return {s["scope"]: s for s in body["scopes"]}


@pytest.mark.django_db
def test_a_groups_key_sees_its_chain_and_the_scope_that_pays_now(
    client, org, engineering, outsider_team
):
    _setup(org, engineering)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {KEY}")

    body = client.get("/v1/wallets/balance", {"user_id": "alice"}).json()

    assert body["team_id"] == "team_engineering"
    assert body["user_id"] == "alice"
    assert [s["scope"] for s in body["scopes"]] == ["user", "team", "organization"]
    assert body["effective_scope"] == "team"
    scopes = _scopes(body)
    assert (scopes["user"]["available"], scopes["user"]["status"]) == ("0.00", "depleted")
    assert scopes["team"] | {} == {
        **scopes["team"],
        "balance": "2.50",
        "held": "0.00",
        "available": "2.50",
        "status": "healthy",
        "effective": True,
    }
    assert scopes["organization"]["balance"] == "100.00"
    assert body["fall_through"] is True
    # A key may not look at another team.
    assert client.get("/v1/wallets/balance", {"team_id": "team_other"}).status_code == 403


@pytest.mark.django_db
def test_the_admin_token_names_a_team_and_a_strict_team_stops_the_chain(
    client, org, engineering, admin_token, outsider_team
):
    _setup(org, engineering)
    engineering.fall_through = False
    engineering.save()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_token}")

    body = client.get("/v1/wallets/balance", {"team_id": "team_engineering"}).json()

    assert [s["scope"] for s in body["scopes"]] == ["team", "organization"]
    organization = _scopes(body)["organization"]
    assert (organization["in_chain"], organization["skipped"]) == (False, "strict")
    assert body["fall_through"] is False
    assert body["effective_scope"] == "team"
    # The outsider's team_outsider is not ours: the same answer as a team that does not exist.
    response = client.get("/v1/wallets/balance", {"team_id": "team_outsider"})
    assert response.status_code == 400
    assert "team_outsider" in response.json()["team_id"][0]


@pytest.mark.django_db
def test_without_a_valid_token_or_key_nothing_is_shown(client, org, engineering):
    _setup(org, engineering)
    assert client.get("/v1/wallets/balance").status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Bearer kt_cg_wrong")
    assert client.get("/v1/wallets/balance").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_kt_wallets_balance_prints_the_cascade(live_server, admin_token, org, engineering):
    _setup(org, engineering)
    result = kt(
        "wallets", "balance", "--team-id", "team_engineering", "--user-id", "alice",
        url=live_server.url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["scope", "name", "balance", "held", "available", "status", "pays"]
    team = next(line.split() for line in lines if line.startswith("team "))
    assert team[2:] == ["2.50", "0.00", "2.50", "healthy", "*"]
    assert lines[-1] == "effective: team; currency USD"
    # The key of the group prints its own chain the same way.
    result = kt("wallets", "balance", url=live_server.url, token=KEY)
    assert result.returncode == 0, result.stderr
    assert "effective: team" in result.stdout
