"""The capture outbox and the late capture, on the real database: a replay charges an answered
call exactly once whatever happened before it (its commit outcome lost, its hold expired and
swept, the replay run twice), and the ledger stays append-only."""

import json
import threading
import time
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from gateway.fastpath import capture_and_record_fast
from gateway.models import UsageEvent
from gateway.outbox import (
    PendingCapture,
    Replayer,
    outbox_pending,
    outbox_replay,
    outbox_write,
)
from gateway.recording import usage_record
from gateway.sweep import holds_sweep
from gateway.tasks import replay_capture_outbox
from tests.factories import DepartmentFactory
from tests.pricing.money_writes import event_fields, funded_wallet
from wallets import services
from wallets.fastpath import hold_place_fast
from wallets.models import Hold, LedgerEntry
from wallets.services.holds import LATE_CAPTURE

from .conftest import live_db

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the fast path is PostgreSQL only"
)

CAPTURES = {"fast": capture_and_record_fast, "orm": usage_record}
PLACE = {"fast": hold_place_fast, "orm": services.hold_place}


@pytest.fixture(autouse=True)
def outbox(settings, tmp_path):
    settings.KT_CAPTURE_OUTBOX_DIR = str(tmp_path / "outbox")
    return tmp_path / "outbox"


@pytest.fixture
def wallet(org):
    return funded_wallet(DepartmentFactory(organization=org, team_id="team_engineering"))


@pytest.fixture
def outsider_wallet(outsider_org):
    return funded_wallet(DepartmentFactory(organization=outsider_org), "5.00")


def books(wallet):
    """Everything money: the wallet, every ledger entry as written, holds, events."""
    wallet.refresh_from_db()
    entries = list(LedgerEntry.objects.order_by("id").values_list("id", "amount", "balance_after"))
    holds = list(Hold.objects.order_by("id").values_list("id", "status", "captured_amount"))
    events = list(UsageEvent.objects.order_by("id").values_list("id", "request_id", "cost"))
    return (wallet.balance, wallet.held), entries, holds, events


def assert_balanced(wallet):
    wallet.refresh_from_db()
    ledger = LedgerEntry.objects.filter(wallet=wallet).aggregate(s=Sum("amount"))["s"]
    held = Hold.objects.filter(wallet=wallet, status="pending").aggregate(s=Sum("amount"))["s"]
    assert wallet.balance == ledger
    assert wallet.held == (held or 0)


@pytest.mark.django_db
@pytest.mark.parametrize("path", CAPTURES)
def test_a_replay_of_a_capture_that_already_committed_writes_nothing(wallet, path):
    hold = PLACE[path](wallet=wallet, amount=Decimal("1"), request_id="req_1")
    fields = event_fields(wallet, "req_1", Decimal("0.4"))
    CAPTURES[path](hold, Decimal("0.4"), fields)  # committed; its caller never learned it did
    outbox_write(hold=hold, amount=Decimal("0.4"), event_fields=fields)
    before = books(wallet)

    report = outbox_replay()

    assert (report.replayed, report.outcomes, report.remaining) == (1, {"nothing": 1}, 0)
    assert books(wallet) == before
    assert outbox_pending() == []
    assert LedgerEntry.objects.filter(kind="capture").count() == 1


@pytest.mark.django_db
def test_a_replay_charges_a_pending_hold_once_and_deletes_its_record(wallet, outsider_wallet):
    hold = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_1")
    fields = event_fields(wallet, "req_1", Decimal("0.4"))
    path = outbox_write(hold=hold, amount=Decimal("0.4"), event_fields=fields)
    answered_at = PendingCapture.from_json(path.read_bytes()).event_fields["created_at"]

    assert outbox_replay().outcomes == {"captured": 1}

    assert not path.exists()
    entry = LedgerEntry.objects.get(kind="capture")
    assert (entry.amount, entry.hold_id, entry.reference) == (Decimal("-0.4"), hold.pk, "req_1")
    event = UsageEvent.objects.get()
    assert (event.cost, event.prompt_tokens, event.tags) == (Decimal("0.4"), 120, fields["tags"])
    assert event.created_at == answered_at  # dated when the call was answered
    assert Hold.objects.get().status == "captured"
    assert_balanced(wallet)
    assert wallet.balance == Decimal("9.6")
    # The same record again (a second process that read it before the delete): nothing.
    outbox_write(hold=hold, amount=Decimal("0.4"), event_fields=fields)
    assert outbox_replay().outcomes == {"nothing": 1}
    assert LedgerEntry.objects.filter(kind="capture").count() == 1
    outsider_wallet.refresh_from_db()
    assert (outsider_wallet.balance, outsider_wallet.held) == (Decimal("5"), 0)


@pytest.mark.django_db
@pytest.mark.parametrize("path", CAPTURES)
def test_a_capture_after_the_sweep_charges_the_answered_call_once_and_replaces_the_placeholder(
    wallet, path
):
    hold = PLACE[path](wallet=wallet, amount=Decimal("1"), request_id="req_1", ttl_seconds=-1)
    assert holds_sweep() == 1
    placeholder = UsageEvent.objects.get()
    assert (placeholder.status, placeholder.cost) == ("expired", 0)
    entries_before = list(LedgerEntry.objects.values_list("id", "amount", "balance_after"))

    fields = {**event_fields(wallet, "req_1", Decimal("0.4")), "model_served": "fake-gpt-1"}
    available = CAPTURES[path](hold, Decimal("0.4"), fields)

    event = UsageEvent.objects.get()
    assert event.pk == placeholder.pk
    assert (event.status, event.cost, event.error_code, event.endpoint) == (
        "ok",
        Decimal("0.4"),
        "",
        "chat.completions",
    )
    assert (event.model_served, event.prompt_tokens) == ("fake-gpt-1", 120)
    late = LedgerEntry.objects.get(kind="capture")
    assert (late.amount, late.balance_after, late.description) == (
        Decimal("-0.4"),
        Decimal("9.6"),
        LATE_CAPTURE,
    )
    # Append-only: the entries before it are untouched; the hold is captured, held not touched.
    assert (
        list(LedgerEntry.objects.exclude(pk=late.pk).values_list("id", "amount", "balance_after"))
        == entries_before
    )
    assert (Hold.objects.get().status, Hold.objects.get().captured_amount) == (
        "captured",
        Decimal("0.4"),
    )
    assert available == Decimal("9.6")
    assert_balanced(wallet)
    # Again (a replay of it), and the sweeper again: nothing more.
    before = books(wallet)
    CAPTURES[path](hold, Decimal("0.4"), fields)
    assert holds_sweep() == 0
    assert books(wallet) == before


@pytest.mark.django_db
def test_a_late_capture_before_the_sweeper_wrote_its_placeholder_leaves_the_sweeper_nothing(
    wallet,
):
    hold = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_1", ttl_seconds=-1)
    services.holds_expire()  # the sweeper expired it and has not written its event yet

    capture_and_record_fast(hold, Decimal("0.4"), event_fields(wallet, "req_1", Decimal("0.4")))

    assert holds_sweep() == 0
    event = UsageEvent.objects.get()
    assert (event.status, event.cost) == ("ok", Decimal("0.4"))
    assert_balanced(wallet)


@pytest.mark.django_db
def test_a_replay_never_captures_another_organizations_hold(wallet, outsider_wallet):
    theirs = hold_place_fast(wallet=outsider_wallet, amount=Decimal("1"), request_id="req_theirs")
    # A record naming their hold's id under our request id (an id reissued after a crash).
    ours = Hold(
        pk=theirs.pk,
        organization_id=wallet.organization_id,
        wallet_id=wallet.pk,
        request_id="req_ours",
        amount=Decimal("1"),
    )
    outbox_write(hold=ours, amount=Decimal("0.4"), event_fields=event_fields(wallet, "req_ours", 0))

    assert outbox_replay().outcomes == {"resolved_before": 1}

    assert Hold.objects.get(pk=theirs.pk).status == "pending"
    outsider_wallet.refresh_from_db()
    assert (outsider_wallet.balance, outsider_wallet.held) == (Decimal("5"), Decimal("1"))
    assert not LedgerEntry.objects.filter(kind="capture").exists()
    event = UsageEvent.objects.get()
    assert (event.request_id, event.cost, event.organization_id) == (
        "req_ours",
        0,
        wallet.organization_id,
    )


@pytest.mark.django_db
def test_an_outbox_record_is_one_complete_private_file_that_reads_back_as_written(wallet, outbox):
    hold = hold_place_fast(wallet=wallet, amount=Decimal("1.5"), request_id="req_1")
    fields = event_fields(wallet, "req_1", Decimal("0.123456789"))

    path = outbox_write(hold=hold, amount=Decimal("0.12345679"), event_fields=fields)

    assert [p.name for p in outbox.iterdir()] == ["req_1.json"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o600
    record = PendingCapture.from_json(path.read_bytes())
    assert record.hold == hold
    assert record.amount == Decimal("0.12345679")
    assert record.event_fields["cost"] == Decimal("0.123456789")
    assert record.event_fields["tags"] == {"app": "kb", "env": "prod"}
    assert json.loads(path.read_text())["version"] == 1


@pytest.mark.django_db
def test_a_record_that_cannot_be_replayed_is_set_aside_and_the_others_are_replayed(
    wallet, outbox, caplog
):
    hold = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_good")
    outbox_write(hold=hold, amount=Decimal("0.4"), event_fields=event_fields(wallet, "req_good", 0))
    (outbox / "req_bad.json").write_text("{not json")

    report = outbox_replay()

    assert (report.replayed, report.failed) == (1, 1)
    assert sorted(p.name for p in outbox.iterdir()) == ["req_bad.failed"]
    assert "req_bad.json failed; set aside" in caplog.text
    assert outbox_pending() == []
    assert [p.name for p in outbox_pending(failed=True)] == ["req_bad.failed"]


@live_db
def test_the_replayer_thread_replays_the_outbox_and_then_ends(wallet):
    hold = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_1")
    outbox_write(hold=hold, amount=Decimal("0.4"), event_fields=event_fields(wallet, "req_1", 0))
    replayer = Replayer()

    replayer.start_if_pending()

    deadline = time.monotonic() + 10
    while replayer.running() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not replayer.running()
    assert outbox_pending() == []
    assert Hold.objects.get().status == "captured"
    assert_balanced(wallet)


@live_db
def test_a_call_whose_hold_expired_while_the_provider_was_answering_is_charged_late(
    gw, oai, settings
):
    settings.KT_HOLD_TTL_SECONDS = 1
    reply = {}

    def run():
        reply["r"] = oai.chat.completions.with_raw_response.create(
            model="fake-chat",
            messages=[{"role": "user", "content": "Slow"}],
            extra_headers={"x-fake-latency": "2500"},
        )

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while not Hold.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    hold = Hold.objects.get()
    time.sleep(max(0.0, (hold.expires_at - timezone.now()).total_seconds()) + 0.1)
    assert holds_sweep() == 1  # the sweeper, while the provider is still answering
    thread.join(20)

    raw = reply["r"]
    event = UsageEvent.objects.get()
    assert (event.request_id, event.status, event.usage_source) == (
        hold.request_id,
        "ok",
        "provider",
    )
    assert raw.headers["x-kt-cost"] == str(event.cost)
    assert event.cost > 0
    assert LedgerEntry.objects.get(kind="capture").description == LATE_CAPTURE
    assert gw.refresh().balance == Decimal("10.00") - event.cost
    assert_balanced(gw.wallet)
    gw.outsider_wallet.refresh_from_db()
    assert gw.outsider_wallet.balance == Decimal("5.00")


@pytest.mark.django_db
def test_the_beat_task_and_the_command_replay_the_outbox(wallet, settings):
    first = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_1")
    second = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_2")
    outbox_write(hold=first, amount=Decimal("0.4"), event_fields=event_fields(wallet, "req_1", 0))
    listing = StringIO()
    call_command("replay_captures", "--list", stdout=listing)
    assert "req_1.json  cost 0.4" in listing.getvalue()
    assert "1 waiting in" in listing.getvalue()

    assert replay_capture_outbox.apply().get() == 1

    outbox_write(hold=second, amount=Decimal("0.2"), event_fields=event_fields(wallet, "req_2", 0))
    out = StringIO()
    call_command("replay_captures", stdout=out)
    assert out.getvalue().strip() == "replayed 1 (captured: 1), set aside 0, still waiting 0"
    assert sorted(Hold.objects.values_list("status", flat=True)) == ["captured", "captured"]
    assert "gateway.tasks.replay_capture_outbox" in [
        entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    ]
