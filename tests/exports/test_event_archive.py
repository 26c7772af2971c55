"""Archiving a month of usage events (PostgreSQL partitions; reports/event_archive.py): the
month's partition is exported to a gzip CSV that adds up, to the last decimal, to its events,
then detached and dropped; the rollups (dashboards) keep the month; a month too recent, or
whose rollups differ from its events, is refused with nothing changed."""

import csv
import gzip
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.db.models import Sum

from gateway.models import EventArchive, UsageEvent
from gateway.partitions import month_partitions, partitions_ensure
from gateway.rollup_models import SpendDaily
from gateway.rollups import rollups_fold
from reports.event_archive import ArchiveRefused, events_archive_month
from reports.exports.rows.events import FIELDS
from tests.factories import DepartmentFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

JANUARY = datetime(2025, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 3, 10, tzinfo=UTC)  # January 2025 is 14 months back


@pytest.fixture
def events():
    """Two organizations (one in Berlin: its days straddle the UTC month) in January and
    February 2025, costs with 8 places, one converted to EUR."""
    partitions_ensure(now=JANUARY, ahead=1)
    berlin = DepartmentFactory(organization=OrganizationFactory(time_zone="Europe/Berlin"))
    utc = DepartmentFactory(organization=OrganizationFactory())
    for n in range(120):
        department = (berlin, utc)[n % 2]
        UsageEvent.objects.create(
            organization=department.organization,
            department=department,
            request_id=f"arch-{n}",
            endpoint="chat.completions",
            provider="openai",
            model_requested="gpt-4o",
            tags={"project": f"p{n % 3}"},
            cost=Decimal(n * 7919 % 100000) / 10**8 * 1000,
            currency="EUR" if n == 7 else "USD",
            created_at=JANUARY + timedelta(hours=n * 11),  # into February from n = 68
        )
    rollups_fold()
    return berlin, utc


def january():
    return UsageEvent.objects.filter(created_at__lt=datetime(2025, 2, 1, tzinfo=UTC))


def test_the_export_adds_up_to_the_months_events_and_the_partition_goes(events, tmp_path):
    rows, cost = january().count(), january().filter(currency="USD").aggregate(c=Sum("cost"))["c"]
    days = list(SpendDaily.objects.order_by("organization", "day").values_list("day", "cost"))

    result = events_archive_month(month=JANUARY, directory=tmp_path, now=LATER)

    with gzip.open(tmp_path / "events-2025-01.csv.gz", "rt", newline="") as f:
        file_rows = list(csv.DictReader(f))
    assert list(file_rows[0]) == [name for name, *_ in FIELDS]  # the events export's columns
    assert len(file_rows) == rows == result.rows == 68
    # The cells of a CSV export: plain decimals (never 0E-8), canonical JSON.
    assert file_rows[0]["cost"] == "0.00000000"
    assert file_rows[0]["tags"] == '{"project":"p0"}'
    usd = [Decimal(r["cost"]) for r in file_rows if r["currency"] == "USD"]
    assert sum(usd) == cost == result.costs["USD"]
    assert result.costs["EUR"] == Decimal(7 * 7919 % 100000) / 10**5
    assert (tmp_path / "events-2025-01.json").exists()
    record = EventArchive.objects.get()
    assert (record.month.isoformat(), record.rows, record.sha256) == (
        "2025-01-01",
        68,
        result.sha256,
    )
    assert record.costs["USD"] == str(cost)
    assert "gateway_usageevent_p2025_01" not in month_partitions().values()
    assert not january().exists()
    assert UsageEvent.objects.count() == 120 - 68  # February stays
    rollups_fold()
    assert list(SpendDaily.objects.order_by("organization", "day").values_list("day", "cost")) == (
        days
    )  # dashboards keep January: they read the rollups


def test_an_archived_months_request_ids_are_forgotten_the_others_kept(events, tmp_path):
    berlin, _ = events
    events_archive_month(month=JANUARY, directory=tmp_path, now=LATER)
    fields = {"organization": berlin.organization, "endpoint": "chat.completions"}
    UsageEvent.objects.create(request_id="arch-0", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageEvent.objects.create(request_id="arch-100", **fields)


def test_a_month_too_recent_is_refused(events, tmp_path):
    with pytest.raises(ArchiveRefused, match="newer than KT_EVENT_ARCHIVE_MIN_MONTHS"):
        events_archive_month(
            month=JANUARY, directory=tmp_path, now=datetime(2026, 1, 31, tzinfo=UTC)
        )
    assert january().count() == 68
    assert not list(tmp_path.iterdir())


def test_a_month_whose_rollups_differ_from_its_events_is_refused(events, tmp_path):
    day = SpendDaily.objects.filter(day="2025-01-15").first()
    SpendDaily.objects.filter(pk=day.pk).update(cost=day.cost + Decimal("0.01"))
    with pytest.raises(ArchiveRefused, match="rollups of 1 day"):
        events_archive_month(month=JANUARY, directory=tmp_path, now=LATER)
    assert january().count() == 68
    assert "gateway_usageevent_p2025_01" in month_partitions().values()


def test_the_command_archives_a_month_and_refuses_it_twice(events, tmp_path, capsys):
    with time_machine.travel(LATER, tick=False):
        call_command("events_archive", "--month", "2025-01", "--dir", str(tmp_path))
        assert "68 events" in capsys.readouterr().out
        with pytest.raises(CommandError, match="no partition gateway_usageevent_p2025_01"):
            call_command("events_archive", "--month", "2025-01", "--dir", str(tmp_path))


def test_after_an_archive_a_rollup_rebuild_is_refused(events, tmp_path):
    # The rebuild deletes the days without events: it would drop the archived month's days.
    events_archive_month(month=JANUARY, directory=tmp_path, now=LATER)
    days = SpendDaily.objects.count()
    with pytest.raises(CommandError, match="months of usage events were archived"):
        call_command("spend_rollups_rebuild")
    assert SpendDaily.objects.count() == days
