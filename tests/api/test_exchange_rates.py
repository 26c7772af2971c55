"""`GET/POST /v1/admin/exchange-rates`: the organization's rates and the shared table, DRF
validation errors naming each field, scoped to the token's organization."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chargeback.models import AuditLog
from gateway.exchange import exchange_rate_create
from gateway.models import ExchangeRate

URL = "/v1/admin/exchange-rates"
pytestmark = pytest.mark.django_db


def test_a_rate_is_added_and_listed_with_the_shared_table(api, org):
    exchange_rate_create(
        organization=None,
        from_currency="USD",
        to_currency="GBP",
        rate=Decimal("0.79"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        actor="root",
        via="admin",
    )
    r = api.post(
        URL,
        {
            "from_currency": "USD",
            "to_currency": "EUR",
            "rate": "0.9213",
            "effective_from": "2026-11-15T00:00:00Z",
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert {k: body[k] for k in ("from_currency", "to_currency", "rate", "scope")} == {
        "from_currency": "USD",
        "to_currency": "EUR",
        "rate": "0.9213",
        "scope": "organization",
    }
    assert body["effective_from"].startswith("2026-11-15T00:00:00")
    row = ExchangeRate.objects.get(pk=body["id"])
    assert (row.organization, row.rate) == (org, Decimal("0.9213"))
    assert AuditLog.objects.filter(action="exchange_rate.create", object_id=str(row.pk)).exists()

    listed = api.get(URL).json()
    assert listed["count"] == 2
    assert [(r["to_currency"], r["scope"]) for r in listed["results"]] == [
        ("EUR", "organization"),
        ("GBP", "shared"),
    ]
    only = api.get(URL, {"to_currency": "GBP"}).json()
    assert [r["rate"] for r in only["results"]] == ["0.79"]


def test_a_rate_without_effective_from_starts_now(api):
    r = api.post(URL, {"from_currency": "USD", "to_currency": "EUR", "rate": 0.92}, format="json")
    assert r.status_code == 201, r.content
    assert ExchangeRate.objects.get().effective_from is not None


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"from_currency", "to_currency", "rate"}),
        ({"from_currency": "usd", "to_currency": "EUR", "rate": "1"}, {"from_currency"}),
        ({"from_currency": "USD", "to_currency": "USD", "rate": "1"}, {"to_currency"}),
        ({"from_currency": "USD", "to_currency": "EUR", "rate": "0"}, {"rate"}),
        ({"from_currency": "USD", "to_currency": "EUR", "rate": "-1"}, {"rate"}),
        ({"from_currency": "USD", "to_currency": "EUR", "rate": "abc"}, {"rate"}),
        ({"from_currency": "USD", "to_currency": "EUR", "rate": "0.12345678901"}, {"rate"}),
        ({"from_currency": "USD", "to_currency": "EUR", "rate": "1", "scope": "x"}, {"scope"}),
        (
            {"from_currency": "USD", "to_currency": "EUR", "rate": "1", "effective_from": "soon"},
            {"effective_from"},
        ),
    ],
)
def test_bad_input_is_a_drf_validation_error_naming_each_field(api, body, errors):
    r = api.post(URL, body, format="json")
    assert r.status_code == 400
    assert set(r.json()) == errors
    assert not ExchangeRate.objects.exists()


def test_a_second_rate_for_the_same_instant_is_refused(api):
    body = {
        "from_currency": "USD",
        "to_currency": "EUR",
        "rate": "0.92",
        "effective_from": "2026-11-01T00:00:00Z",
    }
    assert api.post(URL, body, format="json").status_code == 201
    r = api.post(URL, {**body, "rate": "0.93"}, format="json")
    assert r.status_code == 400
    assert list(r.json()) == ["effective_from"]
    assert ExchangeRate.objects.count() == 1


def test_a_bad_filter_is_refused(api):
    r = api.get(URL, {"from_currency": "XYZ"})
    assert r.status_code == 400
    assert list(r.json()) == ["from_currency"]


def test_another_organizations_rates_are_invisible_and_a_token_is_required(
    api, outsider_api, client
):
    assert (
        outsider_api.post(
            URL, {"from_currency": "USD", "to_currency": "EUR", "rate": "0.5"}, format="json"
        ).status_code
        == 201
    )
    assert api.get(URL).json()["count"] == 0
    assert client.get(URL).status_code == 401
    assert client.post(URL, {}, content_type="application/json").status_code == 401
