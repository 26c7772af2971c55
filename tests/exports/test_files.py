"""What is inside the files: formats, determinism, injection, time zones, FOCUS names."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from openpyxl import load_workbook

from budgets.models import Budget
from chargeback.models import AuditLog
from gateway.models import UsageEvent
from reports.exports.running import export_job_run
from reports.exports.services import export_job_create
from tests.exports.usage import fund, record_usage
from tests.factories import DepartmentFactory

pytestmark = pytest.mark.django_db


def _run(org, **kwargs):
    kwargs = {"format": "csv", "date_from": "2026-05-01", "date_to": "2026-05-31", **kwargs}
    job = export_job_run(job_id=export_job_create(organization=org, **kwargs).id)
    assert job.status == "completed", job.error
    return job


def _bytes(job):
    with default_storage.open(job.file.name, "rb") as fh:
        return fh.read()


def _csv(job):
    return list(csv.DictReader(io.StringIO(_bytes(job).decode(), newline="")))


USAGE = [
    (3, "=1+2", {"app": "+kb", "env": "prod"}),
    (4, "@SUM(A1)", {}),
    (5, "-10", {"note": "\tx"}),
    (6, "\rcr", {}),
    (7, "alice", {"app": "kb"}),
]


@pytest.fixture
def outsider_engineering(outsider_org):
    return DepartmentFactory(
        organization=outsider_org, team_id="team_engineering", name="Engineering"
    )


@pytest.fixture
def usage(org, engineering, model, outsider_engineering):
    """Five calls of `org`'s engineering, and the same five (same team_id, users, tags, times)
    of the outsider's: every file of `org` below must hold its five alone."""
    fund(outsider_engineering)
    for d, user, tags in USAGE:
        at = datetime(2026, 5, d, 12, tzinfo=UTC)
        record_usage(department=outsider_engineering, at=at, model=model, user=user, tags=tags)
    AuditLog.objects.create(
        organization=outsider_engineering.organization,
        actor="user:outsider",
        via="admin",
        action="outsider.action",
        object_type="x",
        created_at=datetime(2026, 5, 20, tzinfo=UTC),
    )
    fund(engineering)
    return [
        record_usage(
            department=engineering,
            at=datetime(2026, 5, d, 12, tzinfo=UTC),
            model=model,
            user=user,
            tags=tags,
        )
        for d, user, tags in USAGE
    ]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "xlsx"])
def test_the_same_data_gives_the_same_bytes(org, usage, fmt):
    first = _run(org, type="events", format=fmt)
    second = _run(org, type="events", format=fmt)
    assert first.id != second.id
    assert _bytes(first) == _bytes(second)
    assert first.manifest["file"]["sha256"] == second.manifest["file"]["sha256"]
    import hashlib

    assert hashlib.sha256(_bytes(first)).hexdigest() == first.manifest["file"]["sha256"]
    assert first.manifest["row_count"] == 5


def test_formula_cells_are_neutralised_but_numbers_stay_numbers(org, usage, engineering):
    Budget.objects.create(organization=org, department=engineering, amount=Decimal("0.01"))
    rows = _csv(_run(org, type="events"))
    assert [r["user"] for r in rows] == ["'=1+2", "'@SUM(A1)", "'-10", "'\rcr", "alice"]
    assert rows[0]["tags"] == '{"app":"+kb","env":"prod"}'
    assert all(not r["cost"].startswith("'") for r in rows)

    chargeback = _csv(_run(org, type="chargeback"))[0]
    assert chargeback["variance"].startswith("-")  # over budget: a negative number, not text
    assert Decimal(chargeback["variance"]) < 0

    sheet = load_workbook(io.BytesIO(_bytes(_run(org, type="chargeback", format="xlsx")))).active
    header = [c.value for c in sheet[1]]
    variance = sheet.cell(row=2, column=header.index("variance") + 1)
    assert variance.data_type == "n"
    assert variance.value < 0

    sheet = load_workbook(io.BytesIO(_bytes(_run(org, type="events", format="xlsx")))).active
    header = [c.value for c in sheet[1]]
    users = [sheet.cell(row=i, column=header.index("user") + 1) for i in range(2, 7)]
    assert [c.value for c in users][:3] == ["'=1+2", "'@SUM(A1)", "'-10"]
    assert all(c.data_type == "s" for c in users)  # text, never a formula
    cost = sheet.cell(row=2, column=header.index("cost") + 1)
    assert cost.data_type == "n"
    assert Decimal(str(cost.value)) == usage[0].cost


def test_jsonl_and_json_carry_exact_amounts_and_raw_text(org, usage):
    lines = _bytes(_run(org, type="events", format="jsonl")).decode().splitlines()
    first = json.loads(lines[0], parse_float=Decimal)
    assert len(lines) == 5
    assert first["cost"] == usage[0].cost
    assert first["user"] == "=1+2"  # programs read JSON; no spreadsheet prefix
    assert first["tags"] == {"app": "+kb", "env": "prod"}
    array = json.loads(_bytes(_run(org, type="events", format="json")), parse_float=Decimal)
    assert [r["request_id"] for r in array] == [u.request_id for u in usage]


def test_an_empty_range_gives_a_header_only_file_and_a_valid_json_array(org, usage):
    job = _run(org, type="events", date_from="2026-01-01", date_to="2026-01-31")
    assert _bytes(job).decode().startswith("created_at,event_id,request_id,")
    assert _bytes(job).count(b"\r\n") == 1
    assert job.manifest["row_count"] == 0
    job = _run(org, type="events", format="json", date_from="2026-01-01", date_to="2026-01-31")
    assert json.loads(_bytes(job)) == []


def test_days_are_whole_local_days_in_the_organizations_time_zone(utc_plus_2, model):
    dept = DepartmentFactory(organization=utc_plus_2, team_id="team_x")
    fund(dept)
    local = utc_plus_2.tz

    def at(*args):
        return datetime(*args, tzinfo=local)

    inside = [at(2026, 5, 31, 23, 30), at(2026, 5, 1, 0, 30)]
    outside = [at(2026, 6, 1, 0, 30), at(2026, 4, 30, 23, 30)]
    for when in inside + outside:
        record_usage(department=dept, at=when, model=model)

    rows = _csv(_run(utc_plus_2, type="events"))
    times = sorted(r["created_at"] for r in rows)
    assert times == ["2026-04-30T22:30:00.000000Z", "2026-05-31T21:30:00.000000Z"]
    job = _run(utc_plus_2, type="chargeback")
    assert job.manifest["period_start"] == "2026-04-30T22:00:00.000000Z"
    assert job.manifest["period_end_exclusive"] == "2026-05-31T22:00:00.000000Z"
    assert _csv(job)[0]["requests"] == "2"


def test_focus_uses_the_finops_column_names_and_the_same_total(org, usage, engineering):
    job = _run(org, type="focus")
    rows = _csv(job)
    for column in [
        "BilledCost",
        "EffectiveCost",
        "ListCost",
        "BillingCurrency",
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "ChargeCategory",
        "ServiceCategory",
        "ServiceName",
        "ResourceId",
        "SubAccountId",
        "SubAccountName",
        "ConsumedQuantity",
        "ConsumedUnit",
        "Tags",
    ]:
        assert column in rows[0]
    first = rows[0]
    assert first["ResourceId"] == usage[0].request_id
    assert first["SubAccountId"] == "team_engineering"
    assert first["ConsumedQuantity"] == str(usage[0].prompt_tokens + usage[0].completion_tokens)
    assert first["ConsumedUnit"] == "Tokens"
    assert first["ChargeCategory"] == "Usage"
    assert first["ChargePeriodStart"] == "2026-05-03T12:00:00.000000Z"
    assert first["ChargePeriodEnd"] == "2026-05-03T13:00:00.000000Z"
    assert first["x_User"] == "'=1+2"
    total = sum(Decimal(r["BilledCost"]) for r in rows)
    assert total == sum(u.cost for u in usage)
    events = _run(org, type="events")
    assert job.manifest["totals"]["USD"]["BilledCost"] == events.manifest["totals"]["USD"]["cost"]


def test_the_audit_log_export_lists_the_range_oldest_first(org, usage, engineering):
    AuditLog.objects.filter(organization=org).update(created_at=datetime(2026, 5, 2, tzinfo=UTC))
    later = AuditLog.objects.create(
        organization=org,
        actor="user:eve",
        via="admin",
        action="=cmd",
        object_type="x",
        created_at=datetime(2026, 5, 20, tzinfo=UTC),
    )
    AuditLog.objects.create(
        organization=org,
        actor="user:eve",
        via="admin",
        action="too late",
        object_type="x",
        created_at=datetime(2026, 6, 1, tzinfo=UTC) + timedelta(seconds=1),
    )
    rows = _csv(_run(org, type="audit-log"))
    assert rows[-1]["id"] == str(later.pk)
    assert "user:outsider" not in {r["actor"] for r in rows}
    assert "outsider.action" not in {r["action"] for r in rows}
    assert {int(r["id"]) for r in rows} <= set(
        AuditLog.objects.filter(organization=org).values_list("pk", flat=True)
    )
    assert rows[-1]["action"] == "'=cmd"
    assert "too late" not in {r["action"] for r in rows}
    assert [r["created_at"] for r in rows] == sorted(r["created_at"] for r in rows)


def test_a_team_filter_limits_every_type_to_that_department(
    org, usage, support, model, outsider_org
):
    fund(support, at=datetime(2026, 5, 2, 9, tzinfo=UTC))
    mine = record_usage(department=support, at=datetime(2026, 5, 9, tzinfo=UTC), model=model)
    # The outsider's team_support spends at the same moment: the filter names org's team only.
    twin = DepartmentFactory(organization=outsider_org, team_id="team_support", name="Support")
    fund(twin, "900.00", at=datetime(2026, 5, 2, 9, tzinfo=UTC))
    record_usage(department=twin, at=datetime(2026, 5, 9, tzinfo=UTC), model=model)
    rows = _csv(_run(org, type="events", filters={"team_id": "team_support"}))
    assert [(r["team_id"], r["request_id"]) for r in rows] == [("team_support", mine.request_id)]
    rows = _csv(_run(org, type="chargeback", filters={"team_id": "team_support"}))
    assert [(r["team_id"], r["requests"]) for r in rows] == [("team_support", "1")]
    assert Decimal(rows[0]["allocations"]) == Decimal("1000.00")
    rows = _csv(_run(org, type="focus", filters={"team_id": "team_support"}))
    assert [r["ResourceId"] for r in rows] == [mine.request_id]


def test_events_say_which_were_charged_above_their_hold(org, usage):
    UsageEvent.objects.filter(pk=usage[1].pk).update(above_hold=True)
    rows = _csv(_run(org, type="events"))
    assert [r["above_hold"] for r in rows] == ["false", "true", "false", "false", "false"]
    lines = _bytes(_run(org, type="events", format="jsonl")).decode().splitlines()
    assert [json.loads(line)["above_hold"] for line in lines] == [False, True, False, False, False]
