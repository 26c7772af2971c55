"""`GET /v1/spend` and `kt spend` against a live server."""

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from chargeback.money import to_cents
from gateway.selectors import spend_by, spend_total
from tests.dashboards.test_dashboard_pages import MAY

KT = str(Path(sys.executable).with_name("kt"))


def _api(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.django_db
def test_it_groups_one_month_by_team_to_the_cent(month, org, admin_token):
    response = _api(admin_token).get("/v1/spend", {"by": "team", "month": "2026-05"})
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == str(to_cents(spend_total(organization=org, **MAY)))
    expected = spend_by(organization=org, field="department__team_id", **MAY)
    assert [(r["key"], r["cost"]) for r in body["rows"]] == [
        (r["key"], str(to_cents(r["cost"]))) for r in expected
    ]
    assert "team_secret" not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(("by", "field"), [("model", "model_requested"), ("user", "user"), ("provider", "provider")])  # fmt: skip
def test_it_groups_by_model_user_and_provider(month, org, admin_token, by, field):
    body = _api(admin_token).get("/v1/spend", {"by": by, "month": "2026-05"}).json()
    expected = spend_by(organization=org, field=field, **MAY)
    assert [r["key"] for r in body["rows"]] == [r["key"] for r in expected]
    assert sum(Decimal(r["cost"]) for r in body["rows"]) == Decimal(body["total"])


@pytest.mark.django_db
def test_the_outsider_token_sees_only_the_outsider(month, outsider_token):
    body = _api(outsider_token).get("/v1/spend", {"month": "2026-05"}).json()
    assert [r["key"] for r in body["rows"]] == ["team_secret"]


@pytest.mark.django_db
def test_bad_input_is_a_clear_400_and_no_token_is_401(month, admin_token):
    client = _api(admin_token)
    assert client.get("/v1/spend", {"by": "colour"}).status_code == 400
    response = client.get("/v1/spend", {"month": "2026-5"})
    assert response.status_code == 400
    assert "YYYY-MM" in response.content.decode()
    assert APIClient().get("/v1/spend").status_code == 401


def _kt(live_server, token, *args):
    env = {**os.environ, "KT_URL": live_server.url, "KT_TOKEN": token}
    return subprocess.run([KT, *args], env=env, capture_output=True, text=True, timeout=60)


# (the default price catalog) for the tests that follow.
@pytest.mark.django_db(transaction=True)
def test_kt_spend_prints_the_table(live_server, month, org, admin_token):
    result = _kt(live_server, admin_token, "spend", "--by", "team", "--month", "2026-05")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Spend by team, 2026-05"
    total = to_cents(spend_total(organization=org, **MAY))
    assert lines[-1].split()[:2] == ["total", f"{total:,.2f}"]
    for row in spend_by(organization=org, field="department__team_id", **MAY):
        assert any(
            line.split()[:2] == [row["key"], f"{to_cents(row['cost']):,.2f}"] for line in lines
        )
    assert "team_secret" not in result.stdout


# (the default price catalog) for the tests that follow.
@pytest.mark.django_db(transaction=True)
def test_kt_spend_reports_errors_in_one_line(live_server, month, admin_token):
    result = _kt(live_server, admin_token, "spend", "--by", "model", "--month", "2026-13")
    assert result.returncode == 1
    assert result.stderr.startswith("kt: 400")
    assert "YYYY-MM" in result.stderr
    result = _kt(live_server, "kt_admin_wrong", "spend")
    assert result.returncode == 1
    assert "rejected KT_TOKEN" in result.stderr
