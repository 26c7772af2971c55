from decimal import Decimal

import pytest

from chargeback.errors import InsufficientFunds
from tests.factories import DepartmentFactory
from wallets import selectors, services
from wallets.fastpath import hold_place_fast
from wallets.models import Hold, LedgerEntry, Wallet

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


@pytest.fixture
def outsider_engineering(outsider_org):
    """The outsider's own team_engineering, funded like ours."""
    return DepartmentFactory(
        organization=outsider_org, team_id="team_engineering", name="Engineering"
    )


def _money(wallet):
    return Wallet.objects.values_list("balance", "held").get(pk=wallet.pk)


def test_holds_on_one_organizations_wallet_never_touch_another_organizations(
    engineering, outsider_engineering
):
    ours, theirs = _funded(engineering), _funded(outsider_engineering)
    their_hold = services.hold_place(wallet=theirs, amount=Decimal("4.00"), request_id="theirs")
    captured = services.hold_place(wallet=ours, amount=Decimal("3.00"), request_id="req_1")
    released = services.hold_place(wallet=ours, amount=Decimal("2.00"), request_id="req_2")
    swept = services.hold_place(
        wallet=ours, amount=Decimal("1.00"), request_id="req_3", ttl_seconds=-1
    )
    with pytest.raises(InsufficientFunds) as refused:
        services.hold_place(wallet=ours, amount=Decimal("4.01"), request_id="req_4")
    assert refused.value.available == Decimal("4.00")  # ours, not the outsider's 6.00

    assert services.hold_capture(hold=captured, amount=Decimal("1.25")).wallet_id == ours.pk
    assert services.hold_release(hold=released) is True
    assert [h.pk for h in services.holds_expire()] == [swept.pk]  # theirs has not expired

    assert _money(ours) == (Decimal("8.75"), Decimal("0"))
    assert _money(theirs) == (Decimal("10.00"), Decimal("4.00"))
    their_hold.refresh_from_db()
    assert their_hold.status == Hold.Status.PENDING
    assert list(LedgerEntry.objects.filter(wallet=theirs).values_list("kind", flat=True)) == [
        "allocation"
    ]
    assert LedgerEntry.objects.get(kind="capture").organization_id == engineering.organization_id


def test_the_effective_wallet_is_never_another_organizations(
    org, engineering, outsider_org, outsider_engineering
):
    # The outsider has every kind of wallet our request could match by name: a user wallet for
    # the same end user, its own team_engineering wallet and an organization wallet.
    services.wallet_for_user(organization=outsider_org, user_ref="alice")
    _funded(outsider_engineering)
    services.wallet_for_organization(organization=outsider_org)

    assert selectors.effective_wallet(organization=org, department=engineering) is None
    assert selectors.effective_wallet(organization=org, department=None, user_ref="alice") is None
    ours = _funded(engineering)
    assert selectors.effective_wallet(
        organization=org, department=engineering, user_ref="alice"
    ) == (ours)
    alice = services.wallet_for_user(organization=org, user_ref="alice")
    assert selectors.effective_wallet(
        organization=org, department=engineering, user_ref="alice"
    ) == (alice)
