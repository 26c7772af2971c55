"""Retention of resolved holds (wallets/retention.py, `manage.py holds_prune`, the daily beat
task): old resolved holds go, the ledger stays exactly as it was and still adds up, pending and
recent holds stay, and a capture whose ledger entry does not name its request is kept."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection
from django.db.models import Sum
from django.utils import timezone

from gateway.fastpath import capture_and_record_fast
from tests.pricing.money_writes import event_fields
from wallets import services
from wallets.fastpath import hold_place_fast
from wallets.ledger import ledger_append
from wallets.models import Hold, LedgerEntry
from wallets.retention import holds_prune

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _funded(department):
    services.wallet_allocate(department=department, amount=Decimal("100.00"), currency="USD")
    return services.wallet_for_team(department=department)


def _age(hold, days):
    """Date a hold (created and resolved) `days` ago."""
    then = timezone.now() - days * DAY
    resolved = then if Hold.objects.get(pk=hold.pk).status != Hold.Status.PENDING else None
    Hold.objects.filter(pk=hold.pk).update(created_at=then, resolved_at=resolved)


def _ledger(wallet):
    return list(
        LedgerEntry.objects.filter(wallet=wallet)
        .order_by("id")
        .values_list("id", "kind", "amount", "balance_after", "hold_id", "reference", "created_at")
    )


@pytest.fixture
def scene(engineering):
    """Holds of every status, old (40 days) and recent (2 days): captured, released, expired,
    and one pending."""
    wallet = _funded(engineering)
    holds = {}
    for age in ("old", "new"):
        captured = services.hold_place(wallet=wallet, amount=Decimal("2"), request_id=f"{age}_c")
        services.hold_capture(hold=captured, amount=Decimal("1.25"))
        released = services.hold_place(wallet=wallet, amount=Decimal("1"), request_id=f"{age}_r")
        services.hold_release(hold=released)
        expired = services.hold_place(wallet=wallet, amount=Decimal("1"), request_id=f"{age}_e")
        services.hold_release(hold=expired, status=Hold.Status.EXPIRED)
        holds[age] = [captured, released, expired]
        for hold in holds[age]:
            _age(hold, 40 if age == "old" else 2)
    pending = services.hold_place(wallet=wallet, amount=Decimal("0.5"), request_id="open")
    return wallet, holds, pending


def test_old_resolved_holds_go_and_the_ledger_stays_as_it_was(scene):
    wallet, holds, pending = scene
    before = _ledger(wallet)

    result = holds_prune(days=30)

    assert result.deleted == 3
    assert result.kept == 0
    remaining = set(Hold.objects.values_list("request_id", flat=True))
    assert remaining == {"new_c", "new_r", "new_e", "open"}
    # The ledger is append-only and untouched: same rows, the capture still names its hold's id
    # and request; the balance is still the sum of the entries.
    assert _ledger(wallet) == before
    capture = LedgerEntry.objects.get(kind="capture", reference="old_c")
    assert capture.hold_id == holds["old"][0].pk
    wallet.refresh_from_db()
    assert LedgerEntry.objects.filter(wallet=wallet).aggregate(s=Sum("amount"))["s"] == (
        wallet.balance
    )
    assert wallet.held == pending.amount
    # Idempotent.
    assert holds_prune(days=30).deleted == 0


def test_a_capture_whose_entry_does_not_name_the_request_is_kept(engineering):
    wallet = _funded(engineering)
    hold = services.hold_place(wallet=wallet, amount=Decimal("2"), request_id="req_unnamed")
    # Resolved by hand, its entry without a reference: nothing tells audit which request it was.
    Hold.objects.filter(pk=hold.pk).update(
        status=Hold.Status.CAPTURED, captured_amount=Decimal("1"), resolved_at=timezone.now()
    )
    ledger_append(
        wallet, kind="capture", amount=Decimal("-1"), held_change=-hold.amount, hold_id=hold.pk
    )
    _age(hold, 40)

    result = holds_prune(days=30)

    assert (result.deleted, result.kept) == (0, 1)
    assert Hold.objects.filter(pk=hold.pk).exists()


def test_the_walk_crosses_windows_and_stops_at_the_cutoff(engineering):
    wallet = _funded(engineering)
    holds = []
    for n in range(7):
        hold = services.hold_place(wallet=wallet, amount=Decimal("1"), request_id=f"req_{n}")
        services.hold_capture(hold=hold, amount=Decimal("0.10"))
        holds.append(hold)
    for hold in holds[:5]:
        _age(hold, 31)

    result = holds_prune(days=30, batch=2)

    assert result.deleted == 5
    assert sorted(Hold.objects.values_list("request_id", flat=True)) == ["req_5", "req_6"]
    assert LedgerEntry.objects.filter(kind="capture").count() == 7


def test_zero_days_keeps_every_hold(scene, settings):
    settings.KT_HOLD_RETENTION_DAYS = 0
    assert holds_prune().deleted == 0
    assert Hold.objects.count() == 7


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the fast path is PostgreSQL only")
def test_a_gateway_capture_of_a_deleted_hold_charges_nothing(engineering):
    """The gateway's capture statement finds no hold (deleted: a replay older than the
    retention) and charges nothing, as for a hold resolved before; the wallet stays exact."""
    wallet = _funded(engineering)
    hold = hold_place_fast(wallet=wallet, amount=Decimal("1"), request_id="req_late")
    services.hold_release(hold=hold, status=Hold.Status.EXPIRED)  # as the sweeper
    _age(hold, 40)
    assert holds_prune(days=30).deleted == 1

    capture_and_record_fast(
        hold, Decimal("0.40"), event_fields(wallet, "req_late", Decimal("0.40"))
    )

    wallet.refresh_from_db()
    assert wallet.balance == Decimal("100.00")
    assert not LedgerEntry.objects.filter(reference="req_late").exists()


def test_the_command_and_the_daily_task(scene):
    out = StringIO()
    call_command("holds_prune", "--days", "30", stdout=out)
    assert out.getvalue().startswith("3 holds resolved before ")
    with pytest.raises(CommandError, match="--days must be at least 1"):
        call_command("holds_prune", "--days", "0")
    beat = settings.CELERY_BEAT_SCHEDULE["wallets-prune-resolved-holds"]
    assert beat["task"] == "wallets.prune_resolved_holds"
    from wallets.tasks import prune_resolved_holds

    # The default retention, 90 days: the 40-day-old holds stay.
    assert settings.KT_HOLD_RETENTION_DAYS == 90
    assert prune_resolved_holds.apply().get() == 0
    assert Hold.objects.count() == 4


def test_the_ledger_still_allows_one_capture_per_hold_id(engineering):
    """wallets 0010 dropped the hold foreign key and its plain index, not the partial unique
    index (Django's AlterField would have dropped that one too): a second capture entry for a
    hold, deleted or not, is refused by the database."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "wallets_ledgerentry")
    on_hold = {name: info for name, info in constraints.items() if info["columns"] == ["hold_id"]}
    assert set(on_hold) == {"ledger_one_capture_per_hold"}
    assert on_hold["ledger_one_capture_per_hold"]["unique"]
    wallet = _funded(engineering)
    hold = services.hold_place(wallet=wallet, amount=Decimal("2"), request_id="req_once")
    services.hold_capture(hold=hold, amount=Decimal("1"))
    Hold.objects.filter(pk=hold.pk).delete()
    with pytest.raises(IntegrityError):
        ledger_append(wallet, kind="capture", amount=Decimal("-1"), hold_id=hold.pk)
