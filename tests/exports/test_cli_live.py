"""The seed's command, verbatim, through the installed `kt` against a live server."""

import csv
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from chargeback.money import to_cents
from tests.exports.usage import fund, record_usage

KT = str(Path(sys.executable).parent / "kt")
SEED_COMMAND = (
    "kt export-jobs create --type events --format csv --date-from 2026-05-01 --date-to 2026-05-31"
)


def kt(live_server, token, *args, cwd=None):
    env = {**os.environ, "KT_URL": live_server.url, "KT_TOKEN": token}
    return subprocess.run(
        [KT, *args], capture_output=True, text=True, env=env, timeout=60, cwd=cwd, check=False
    )


@pytest.fixture
def may_usage(org, engineering, support, model):
    fund(engineering)
    fund(support)
    events = [
        record_usage(
            department=dept,
            at=datetime(2026, 5, day, 9, tzinfo=UTC),
            model=model,
            user='=HYPERLINK("http://evil")' if day == 7 else f"user{day}",
        )
        for day in (1, 7, 15, 16, 31)
        for dept in (engineering, support)
    ]
    record_usage(department=support, at=datetime(2026, 6, 1, 0, 0, 1, tzinfo=UTC), model=model)
    return events


@pytest.mark.django_db(transaction=True)
def test_the_seed_command_queues_an_export_that_downloads_as_csv(
    live_server, admin_token, may_usage, outsider_with_usage, eager, tmp_path
):
    created = kt(live_server, admin_token, *SEED_COMMAND.split()[1:])
    assert created.returncode == 0, created.stderr
    job_id = created.stdout.strip()
    assert job_id.startswith("job_")

    shown = kt(live_server, admin_token, "export-jobs", "get", "--id", job_id, "--json")
    assert '"status": "completed"' in shown.stdout, shown.stdout + shown.stderr

    listed = kt(live_server, admin_token, "export-jobs", "list")
    assert job_id in listed.stdout

    out = tmp_path / "may.csv"
    got = kt(
        live_server, admin_token, "export-jobs", "download", "--id", job_id, "--output", str(out)
    )
    assert got.returncode == 0, got.stderr
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(may_usage) == 10
    assert sum(Decimal(r["cost"]) for r in rows) == sum(e.cost for e in may_usage)
    assert {r["organization"] for r in rows} == {"acme"}
    assert to_cents(sum(Decimal(r["cost"]) for r in rows)) > 0
    # The formula an end user typed is text now.
    assert '\'=HYPERLINK("http://evil")' in {r["user"] for r in rows}


@pytest.mark.django_db(transaction=True)
def test_create_wait_shows_progress_and_downloads_the_file(
    live_server, admin_token, may_usage, eager, tmp_path
):
    result = kt(
        live_server,
        admin_token,
        "export-jobs",
        "create",
        "--type",
        "chargeback",
        "--format",
        "xlsx",
        "--date-from",
        "2026-05-01",
        "--date-to",
        "2026-05-31",
        "--wait",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "10/10" not in result.stderr  # chargeback has one row per department, not per event
    assert "2/2 rows 100.0% completed" in result.stderr
    saved = tmp_path / "acme_chargeback_2026-05-01_2026-05-31.xlsx"
    assert saved.exists()

    from openpyxl import load_workbook

    sheet = load_workbook(saved, read_only=True).active
    rows = list(sheet.values)
    assert rows[0][:4] == ("month", "period_start", "period_end", "team_id")
    assert [r[3] for r in rows[1:]] == ["team_engineering", "team_support"]
    spend = rows[0].index("spend")
    assert all(isinstance(r[spend], int | float) for r in rows[1:])


@pytest.mark.django_db(transaction=True)
def test_kt_reports_a_bad_request_in_one_line(live_server, admin_token):
    result = kt(
        live_server,
        admin_token,
        "export-jobs",
        "create",
        "--type",
        "events",
        "--date-from",
        "2026-05-31",
        "--date-to",
        "2026-05-01",
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "kt: 400: date_from 2026-05-31 is after date_to 2026-05-01"
