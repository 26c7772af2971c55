"""GET /v1/wallets/{team_id}/transactions: the ledger and the holds as one list of kinds
(reserve, settle, release, refund, allocate, reclaim, credit, adjust), filtered by kind and
date, paged; never another organization's."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from tests.wallets.test_cli import kt
from wallets import services

pytestmark = pytest.mark.django_db

URL = "/v1/wallets/team_engineering/transactions"
DAY1 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def _history(org, engineering):
    """Day 1: allocate 10, a hold of 2 settled at 1.5, refund 0.5. Day 2: a hold of 1 released,
    another expired, reclaim 3, an adjustment of +0.25."""
    with time_machine.travel(DAY1, tick=True):
        services.wallet_allocate(department=engineering, amount=Decimal("10"), currency="USD")
        wallet = services.wallet_for_team(department=engineering)
        hold = services.hold_place(wallet=wallet, amount=Decimal("2"), request_id="req_a")
        services.hold_capture(hold=hold, amount=Decimal("1.5"))
        services.wallet_refund(
            organization=org, request_id="req_a", amount=Decimal("0.5"), reason="outage"
        )
    with time_machine.travel(DAY1 + timedelta(days=1), tick=True):
        services.hold_release(
            hold=services.hold_place(wallet=wallet, amount=Decimal("1"), request_id="req_b")
        )
        services.hold_place(wallet=wallet, amount=Decimal("0.75"), request_id="req_c")
        services.holds_expire(now=DAY1 + timedelta(days=2))
        services.wallet_reclaim(department=engineering, amount=Decimal("3"))
        services.wallet_adjust(wallet=wallet, amount=Decimal("0.25"), reason="rounding")
    return wallet


def test_every_kind_newest_first_with_signed_amounts(api, org, engineering, outsider_team):
    _history(org, engineering)

    body = api.get(URL).json()

    kinds = [(r["kind"], r["amount"], r["reference"]) for r in body["results"]]
    assert body["count"] == 10
    assert kinds == [
        ("adjust", "0.25", ""),
        ("reclaim", "-3.00", "to:organization"),
        ("release", "0.75", "req_c"),  # expired by the sweep
        ("reserve", "-0.75", "req_c"),
        ("release", "1.00", "req_b"),
        ("reserve", "-1.00", "req_b"),
        ("refund", "0.50", "req_a"),
        ("settle", "-1.50", "req_a"),
        ("reserve", "-2.00", "req_a"),
        ("allocate", "10.00", "from:organization"),
    ]
    expired = body["results"][2]
    assert (expired["description"], expired["balance_after"]) == ("expired", None)
    assert body["results"][0]["balance_after"] == "6.25"  # 10 - 1.5 + 0.5 - 3 + 0.25
    assert body["results"][-1]["transfer_id"].startswith("trf_")


def test_filtered_by_kind_and_by_day_and_paged(api, org, engineering):
    _history(org, engineering)

    settle_refund = api.get(URL, {"kind": ["settle", "refund"]}).json()
    assert [r["kind"] for r in settle_refund["results"]] == ["refund", "settle"]

    day1 = api.get(URL, {"date_from": "2026-05-04", "date_to": "2026-05-04"}).json()
    assert {r["kind"] for r in day1["results"]} == {"allocate", "reserve", "settle", "refund"}
    assert day1["count"] == 4

    page = api.get(URL, {"limit": 3, "offset": 3}).json()
    assert [r["kind"] for r in page["results"]] == ["reserve", "release", "reserve"]
    assert page["count"] == 10
    assert "offset=6" in page["next"]


def test_bad_filters_are_a_400_naming_the_parameter(api, engineering, org):
    _history(org, engineering)
    assert "kind" in api.get(URL, {"kind": "spend"}).json()
    response = api.get(URL, {"date_from": "2026-05-05", "date_to": "2026-05-04"})
    assert response.status_code == 400
    assert "date_to" in response.json()


def test_another_organizations_team_is_a_404(
    api, outsider_api, client, org, engineering, outsider_team
):
    _history(org, engineering)
    assert api.get("/v1/wallets/team_outsider/transactions").status_code == 404
    theirs = outsider_api.get(URL).json()  # their own team_engineering: only their rows
    assert [r["kind"] for r in theirs["results"]] == ["allocate"]
    assert client.get(URL).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_kt_wallets_transactions_prints_them_filtered(live_server, admin_token, org, engineering):
    _history(org, engineering)

    result = kt(
        "wallets", "transactions", "team_engineering", "--kind", "settle", "--kind", "refund",
        url=live_server.url,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    header, _rule, *rows = result.stdout.splitlines()
    assert header.split() == ["time", "(UTC)", "kind", "amount", "balance", "cur", "reference"]
    assert [row.split()[2:] for row in rows] == [
        ["refund", "0.50", "9.00", "USD", "req_a"],
        ["settle", "-1.50", "8.50", "USD", "req_a"],
    ]
    bad = kt("wallets", "transactions", "team_outsider", url=live_server.url)
    assert bad.returncode != 0
    assert "404" in bad.stderr
