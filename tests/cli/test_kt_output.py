"""`kt` as a person uses it: piped into `head`, asked for a job, given a bad date. A real
process against a live server (pytest-django's live_server on loopback)."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.models import UsageEvent
from reports.exports.running import export_job_run
from reports.exports.services import export_job_create
from wallets import services
from wallets.ledger import ledger_append

pytestmark = pytest.mark.django_db(transaction=True)

KT = str(Path(sys.executable).parent / "kt")


def _env(live_server, token) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KT_")}
    return {**env, "KT_URL": live_server.url, "KT_TOKEN": token}


def kt(live_server, token, *args):
    return subprocess.run(
        [KT, *args],
        env=_env(live_server, token),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def may_of_many_users(org, engineering):
    """May 2026 spend of 1,500 users: `kt spend --by user` prints more than a pipe holds."""
    wallet = services.wallet_for_team(department=engineering)
    UsageEvent.objects.bulk_create(
        UsageEvent(
            organization=org,
            department=engineering,
            wallet=wallet,
            request_id=f"req_many_{n}",
            user=f"user.{n:04d}@acme.example",
            endpoint="/v1/chat/completions",
            provider="openai",
            model_requested="gpt-4o-mini",
            prompt_tokens=1200 + n,
            completion_tokens=300,
            cost=Decimal("0.001234") * (n + 1),
            created_at=datetime(2026, 5, 1 + n % 28, 12, tzinfo=UTC),
        )
        for n in range(1500)
    )


def test_kt_spend_piped_into_head_ends_quietly(live_server, admin_token, may_of_many_users):
    spend = subprocess.Popen(
        [KT, "spend", "--by", "user", "--month", "2026-05"],
        env=_env(live_server, admin_token),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = subprocess.run(
        ["head", "-n", "5"], stdin=spend.stdout, capture_output=True, text=True, timeout=60
    )
    spend.stdout.close()  # only head reads it now: kt's next write finds the reader gone
    _, stderr = spend.communicate(timeout=60)

    assert head.stdout.splitlines()[0] == "Spend by user, 2026-05"
    assert len(head.stdout.splitlines()) == 5
    assert stderr.decode() == ""  # no BrokenPipeError, no traceback
    assert spend.returncode == 0
    # The same command unpiped prints every user: the pipe really was cut short.
    whole = kt(live_server, admin_token, "spend", "--by", "user", "--month", "2026-05")
    assert len(whole.stdout) > 64 * 1024
    top = whole.stdout.splitlines()[4].split()
    assert top[0] == "user.1499@acme.example"
    assert top[1] == "1.85"  # 0.001234 x 1,500, to the cent
    assert top[5] == "2,999"  # tokens, with separators


def test_export_jobs_get_prints_a_table_and_json_for_machines(live_server, admin_token, org):
    services.wallet_allocate(
        department=org.departments.create(team_id="team_data", name="Data"),
        amount=Decimal("25000"),
        currency="USD",
    )
    job = export_job_create(
        organization=org, type="chargeback", format="csv", date_from="2026-05-01",
        date_to="2026-05-31",
    )  # fmt: skip
    export_job_run(job_id=job.id)

    shown = kt(live_server, admin_token, "export-jobs", "get", "--id", job.id)

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["id", job.id]
    assert "status        completed" in shown.stdout
    assert "period        2026-05-01 to 2026-05-31" in shown.stdout
    assert "Totals (USD)" in shown.stdout
    assert any(line.split()[:2] == ["allocations", "0.00"] for line in lines)
    assert "{" not in shown.stdout  # not raw JSON
    assert len(lines) < 40
    machine = kt(live_server, admin_token, "export-jobs", "get", "--id", job.id, "--json")
    parsed = json.loads(machine.stdout)
    assert parsed["id"] == job.id
    assert parsed["manifest"]["type"] == "chargeback"


def test_a_bad_date_is_named_by_kt_and_by_the_api(live_server, admin_token, api):
    result = kt(
        live_server, admin_token, "export-jobs", "create", "--type", "events",
        "--date-from", "2026-05-32", "--date-to", "2026-06-01",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        "kt: 400: date_from: 2026-05-32 is not a date: day is out of range for month\n"
    )
    month = kt(live_server, admin_token, "spend", "--month", "2026-13")
    assert month.returncode == 1
    assert month.stderr == (
        "kt: 400: month: '2026-13' is not a month: it must look like YYYY-MM (01 to 12)\n"
    )

    response = api.post(
        "/v1/export-jobs",
        {"type": "events", "format": "csv", "date_from": "2026-05-32", "date_to": "2026-06-01"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["date_from"] == [
        "2026-05-32 is not a date: day is out of range for month"
    ]
    assert api.get("/v1/spend", {"month": "2026-13"}).json()["month"] == [
        "'2026-13' is not a month: it must look like YYYY-MM (01 to 12)"
    ]


def test_wallet_tables_read_for_people(live_server, admin_token, engineering):
    services.wallet_allocate(department=engineering, amount=Decimal("30000"), currency="USD")
    wallet = services.wallet_for_team(department=engineering)
    ledger_append(wallet, kind="capture", amount=Decimal("-4E-8"), reference="req_tiny")

    ledger = kt(live_server, admin_token, "wallets", "ledger", "team_engineering")
    listed = kt(live_server, admin_token, "wallets", "list")
    shown = kt(live_server, admin_token, "wallets", "show", "team_engineering")

    assert "-0.00000004" in ledger.stdout
    assert "29,999.99999996" in ledger.stdout
    assert "30,000.00" in ledger.stdout
    assert "29,999.99999996" in listed.stdout
    assert "30,000.00" in shown.stdout
    for out in (ledger.stdout, listed.stdout, shown.stdout):
        assert "E-" not in out
