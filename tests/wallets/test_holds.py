from decimal import Decimal

import pytest

from chargeback.errors import InsufficientFunds
from gateway.fastpath import hold_place_fast
from wallets import services
from wallets.models import Hold, LedgerEntry

pytestmark = pytest.mark.django_db


def _funded(department, amount="10.00"):
    services.wallet_allocate(department=department, amount=Decimal(amount), currency="USD")
    return services.wallet_for_team(department=department)


def test_capture_charges_actual_cost_and_releases_the_rest(engineering):
    wallet = _funded(engineering)
    hold = services.hold_place(wallet=wallet, amount=Decimal("3.00"), request_id="req_1")
    entry = services.hold_capture(hold=hold, amount=Decimal("1.25"))

    wallet.refresh_from_db()
    assert entry.amount == Decimal("-1.25")
    assert wallet.balance == Decimal("8.75")
    assert wallet.held == Decimal("0")
    assert entry.balance_after == Decimal("8.75")


def test_a_hold_is_captured_at_most_once(engineering):
    wallet = _funded(engineering)
    hold = services.hold_place(wallet=wallet, amount=Decimal("3.00"), request_id="req_1")
    assert services.hold_capture(hold=hold, amount=Decimal("1.00")) is not None
    assert services.hold_capture(hold=hold, amount=Decimal("1.00")) is None
    assert services.hold_release(hold=hold) is False

    wallet.refresh_from_db()
    assert wallet.balance == Decimal("9.00")
    assert LedgerEntry.objects.filter(kind="capture").count() == 1


def test_a_hold_larger_than_available_is_refused(engineering):
    wallet = _funded(engineering, "1.00")
    with pytest.raises(InsufficientFunds) as exc:
        services.hold_place(wallet=wallet, amount=Decimal("1.01"), request_id="req_1")
    assert exc.value.available == Decimal("1.00")
    assert not Hold.objects.exists()


@pytest.mark.parametrize("place", ["orm", "fast"])
def test_the_refusal_states_sub_cent_amounts_as_they_are(engineering, place):
    wallet = _funded(engineering, "0.004")
    hold = services.hold_place if place == "orm" else hold_place_fast
    with pytest.raises(InsufficientFunds) as exc:
        hold(wallet=wallet, amount=Decimal("0.00412345"), request_id="req_1")
    # Rounded to cents both would read 0.00: "has 0.00 available, may cost up to 0.00".
    assert exc.value.message == (
        "wallet team_engineering has 0.004 USD available, "
        "this request may cost up to 0.00412345 USD"
    )
    with pytest.raises(InsufficientFunds) as exc:
        hold(wallet=wallet, amount=Decimal("1.5"), request_id="req_2")
    assert "this request may cost up to 1.50 USD" in exc.value.message  # cents when exact


def test_expired_holds_are_swept_once(engineering):
    wallet = _funded(engineering)
    services.hold_place(wallet=wallet, amount=Decimal("2.00"), request_id="req_1", ttl_seconds=-1)
    assert len(services.holds_expire()) == 1
    assert services.holds_expire() == []
    wallet.refresh_from_db()
    assert wallet.held == Decimal("0")
    assert wallet.balance == Decimal("10.00")
