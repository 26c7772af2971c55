"""The installed `kt` against a real server (pytest-django's live_server on loopback)."""

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.ports import free_port
from wallets import services
from wallets.models import LedgerEntry, Wallet

pytestmark = pytest.mark.django_db(transaction=True)

KT = str(Path(sys.executable).parent / "kt")


def kt(*args, url, token="kt_admin_acme_test"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KT_")}
    env["KT_URL"] = url
    if token is not None:
        env["KT_TOKEN"] = token
    return subprocess.run(
        [KT, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def one_line(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_allocate_show_ledger_and_list(live_server, admin_token, engineering, outsider_team):
    url = live_server.url
    allocated = kt(
        "wallets", "allocate", "--team-id", "team_engineering", "--amount", "20000.00",
        "--currency", "USD", "--description", "Engineering May 2026", url=url,
    )  # fmt: skip
    assert allocated.returncode == 0, allocated.stderr
    assert "allocation 20,000.00 USD -> team_engineering" in allocated.stdout
    assert "balance 20,000.00" in allocated.stdout
    assert Wallet.objects.get(department=engineering).balance == Decimal("20000")

    wallet = services.wallet_for_team(department=engineering)
    hold = services.hold_place(wallet=wallet, amount=Decimal("5"), request_id="req_cli_1")
    services.hold_capture(hold=hold, amount=Decimal("1.234"))
    services.hold_place(wallet=wallet, amount=Decimal("10"), request_id="req_cli_2")

    shown = kt("wallets", "show", "team_engineering", url=url)
    assert shown.returncode == 0, shown.stderr
    lines = dict(line.split(None, 1) for line in shown.stdout.splitlines() if " " in line)
    assert "19,998.766" in shown.stdout
    assert lines["held"].strip() == "10.00"
    assert lines["available"].strip() == "19,988.766"
    as_option = kt("wallets", "show", "--team-id", "team_engineering", "--json", url=url)
    assert json.loads(as_option.stdout)["balance"] == "19998.766"

    ledger = kt("wallets", "ledger", "team_engineering", "--limit", "1", url=url)
    assert ledger.returncode == 0, ledger.stderr
    assert "capture" in ledger.stdout
    assert "req_cli_1" in ledger.stdout
    assert "allocation" not in ledger.stdout
    assert "(1 of 2 entries" in ledger.stdout

    listed = kt("wallets", "list", url=url)
    assert listed.returncode == 0, listed.stderr
    header, _rule, *rows = listed.stdout.splitlines()
    assert header.split() == [
        "scope", "name", "balance", "reserved", "available", "allocated", "spent", "cur", "status"
    ]  # fmt: skip
    assert len(rows) == 2  # ours only: the organization's (it funded the team) and the team's
    assert rows[0].split() == [
        "organization", "Acme", "0.00", "0.00", "0.00", "20,000.00", "0.00", "USD", "depleted",
    ]  # fmt: skip
    assert rows[1].split() == [
        "team", "team_engineering", "19,998.766", "10.00", "19,988.766", "20,000.00", "1.234",
        "USD", "healthy",
    ]  # fmt: skip


def test_allocate_with_an_idempotency_key_applies_once(live_server, admin_token, engineering):
    args = ("wallets", "allocate", "--team-id", "team_engineering", "--amount", "8000.00",
            "--idempotency-key", "support-may", "--json")  # fmt: skip
    first = kt(*args, url=live_server.url)
    again = kt(*args[:-1], url=live_server.url)

    assert first.returncode == again.returncode == 0, again.stderr
    assert "replayed" in again.stdout
    assert LedgerEntry.objects.count() == 3  # once: the auto_fund credit and the transfer
    assert json.loads(first.stdout)["amount"] == "8000.00"

    conflict = kt(*[a if a != "8000.00" else "9000" for a in args], url=live_server.url)
    assert one_line(conflict).startswith("kt: 409:")


def test_changes_made_with_kt_are_audited_as_cli_and_plain_api_calls_as_api(
    live_server, admin_token, org, engineering
):
    from chargeback.models import AuditLog
    from tests.conftest import bearer_client

    allocated = kt("wallets", "allocate", "--team-id", "team_engineering", "--amount", "10", url=live_server.url)  # fmt: skip
    assert allocated.returncode == 0, allocated.stderr
    credited = kt("wallets", "credit", "--amount", "5", url=live_server.url)
    assert credited.returncode == 0, credited.stderr
    bearer_client(admin_token).post(
        "/v1/wallets/allocate", {"team_id": "team_engineering", "amount": "1"}, format="json"
    )

    rows = AuditLog.objects.filter(organization=org).order_by("id")
    assert [(r.action, r.via) for r in rows] == [
        ("wallet.allocation", "cli"),
        ("wallet.credit", "cli"),
        ("wallet.allocation", "api"),
    ]


def test_credit_and_reclaim(live_server, admin_token, org, engineering):
    services.wallet_allocate(department=engineering, amount=Decimal("100"), currency="USD")
    credit = kt("wallets", "credit", "--amount", "50", url=live_server.url)
    assert credit.returncode == 0, credit.stderr
    assert "credit 50.00 USD -> organization" in credit.stdout

    reclaim = kt("wallets", "reclaim", "--team-id", "team_engineering", url=live_server.url)
    assert reclaim.returncode == 0, reclaim.stderr
    assert "reclaim -100.00 USD -> team_engineering" in reclaim.stdout
    assert Wallet.objects.get(organization=org, scope="organization").balance == Decimal("150")


def test_errors_are_one_line_and_a_non_zero_exit(live_server, admin_token, engineering):
    unknown = kt("wallets", "allocate", "--team-id", "team_nobody", "--amount", "1", url=live_server.url)  # fmt: skip
    assert "unknown team" in one_line(unknown)

    rejected = kt("wallets", "list", url=live_server.url, token="kt_admin_wrong")
    assert "rejected KT_TOKEN" in one_line(rejected)
    missing = kt("wallets", "show", "team_engineering", url=live_server.url, token=None)
    assert "KT_TOKEN" in one_line(missing)

    unreachable = kt("wallets", "list", url=f"http://127.0.0.1:{free_port()}")
    assert "cannot reach" in one_line(unreachable)
    assert LedgerEntry.objects.count() == 0


def test_a_validation_error_is_one_readable_line(live_server, admin_token, engineering):
    result = kt(
        "wallets", "allocate", "--team-id", "team_nope", "--amount", "-5",
        "--currency", "USD", url=live_server.url,
    )  # fmt: skip
    line = one_line(result)
    assert line.startswith("kt: 400: ")
    assert "team_id: " in line
    assert "amount: " in line
    assert "{" not in line


def test_a_malformed_kt_url_is_one_line(admin_token):
    line = one_line(kt("wallets", "list", url="http://[::1"))
    assert "KT_URL" in line
