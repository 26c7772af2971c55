"""The cascade (wallets/cascade.py): a hold lands on the first wallet of user -> team ->
organization that can cover it; a strict department stops at its team wallet. Both the ORM
path and PostgreSQL's one-statement path, real transactions and threads."""

import threading
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection

from chargeback.errors import InsufficientFunds
from tests.factories import DepartmentFactory, OrganizationFactory
from wallets import fastpath, services
from wallets.cascade import cascade_summary, wallet_chain
from wallets.models import Hold, Wallet

PLACE = {
    "orm": services.hold_place_cascade,
    "fast": fastpath.hold_place_cascade_fast,
    "reserve": services.hold_reserve,  # what the gateway calls (the fast path on PostgreSQL)
}


def _chain(organization, department, user_ref="alice", *, user="0", team="0", org="0"):
    """User, team and organization wallets funded with the given amounts ("" : no wallet)."""
    if user != "":
        services.wallet_allocate(
            department=department, amount=Decimal("1"), currency="USD", user_ref=user_ref
        )
        wallet = services.wallet_for_user(
            organization=organization, user_ref=user_ref, department=department
        )
        _spend(wallet, Decimal("1") - Decimal(user))
    if team != "":
        services.wallet_allocate(department=department, amount=Decimal("1"), currency="USD")
        _spend(services.wallet_for_team(department=department), Decimal("1") - Decimal(team))
    if org != "" and Decimal(org) > 0:
        services.wallet_credit(organization=organization, amount=Decimal(org), currency="USD")
    elif org != "":
        services.wallet_for_organization(organization=organization)
    return wallet_chain(organization=organization, department=department, user_ref=user_ref)


def _spend(wallet, amount):
    if amount > 0:
        hold = services.hold_place(wallet=wallet, amount=amount, request_id=f"spend-{wallet.pk}")
        services.hold_capture(hold=hold, amount=amount)


@pytest.mark.django_db
@pytest.mark.parametrize("place", PLACE)
def test_an_empty_user_wallet_falls_through_to_the_funded_team_wallet(org, engineering, place):
    chain = _chain(org, engineering, user="0", team="1", org="5")
    assert [w.scope for w in chain] == ["user", "team", "organization"]

    hold = PLACE[place](wallets=chain, amount=Decimal("0.40"), request_id="req_1")

    team = services.wallet_for_team(department=engineering)
    assert hold.wallet_id == team.pk
    team.refresh_from_db()
    assert team.held == Decimal("0.40")
    assert Wallet.objects.exclude(pk=team.pk).filter(held__gt=0).count() == 0
    assert Hold.objects.get(request_id="req_1").wallet_id == team.pk


@pytest.mark.django_db
@pytest.mark.parametrize("place", PLACE)
def test_the_organization_pays_when_user_and_team_cannot(org, engineering, place):
    chain = _chain(org, engineering, user="0.10", team="0.10", org="5")
    hold = PLACE[place](wallets=chain, amount=Decimal("0.40"), request_id="req_1")
    assert hold.wallet_id == services.wallet_for_organization(organization=org).pk


@pytest.mark.django_db
@pytest.mark.parametrize("place", PLACE)
def test_the_most_specific_wallet_pays_when_it_can(org, engineering, place):
    chain = _chain(org, engineering, user="0.50", team="1", org="5")
    hold = PLACE[place](wallets=chain, amount=Decimal("0.50"), request_id="req_1")
    assert hold.wallet_id == chain[0].pk


@pytest.mark.django_db
@pytest.mark.parametrize("place", PLACE)
def test_a_strict_department_stops_at_its_team_wallet(org, engineering, place):
    engineering.fall_through = False
    engineering.save()
    chain = _chain(org, engineering, user="0", team="0.10", org="5")
    assert [w.scope for w in chain] == ["user", "team"]

    with pytest.raises(InsufficientFunds) as exc:
        PLACE[place](wallets=chain, amount=Decimal("0.40"), request_id="req_1")

    assert exc.value.available == Decimal("0.10")
    assert "user wallet" in exc.value.message
    assert "team wallet" in exc.value.message
    assert not Hold.objects.filter(request_id="req_1").exists()
    assert not Wallet.objects.filter(held__gt=0).exists()


@pytest.mark.django_db
def test_the_chain_never_holds_another_organizations_wallets(org, engineering, outsider_org):
    theirs = DepartmentFactory(organization=outsider_org, team_id="team_engineering")
    _chain(outsider_org, theirs, user="1", team="1", org="5")
    assert wallet_chain(organization=org, department=engineering, user_ref="alice") == ()
    ours = _chain(org, engineering, user="", team="", org="5")
    assert [(w.scope, w.organization_id) for w in ours] == [("organization", org.pk)]
    # Another organization's department id does not name a team wallet of ours.
    assert [
        w.scope for w in wallet_chain(organization=org, department=theirs, user_ref="alice")
    ] == ["organization"]


@pytest.mark.django_db
def test_the_summary_lists_every_scope_and_the_effective_one(org, engineering):
    _chain(org, engineering, user="0", team="0.75", org="5")
    summary = cascade_summary(organization=org, department=engineering, user_ref="alice")
    rows = {s["scope"]: s for s in summary["scopes"]}
    assert [s["scope"] for s in summary["scopes"]] == ["user", "team", "organization"]
    assert summary["effective_scope"] == "team"
    assert rows["user"]["available"] == 0
    assert rows["user"]["status"] == "depleted"
    assert rows["team"]["available"] == Decimal("0.75")
    assert rows["team"]["effective"]
    assert rows["organization"]["balance"] == Decimal("5")
    assert not rows["organization"]["effective"]

    engineering.fall_through = False
    engineering.save()
    summary = cascade_summary(organization=org, department=engineering, user_ref="alice")
    organization = summary["scopes"][2]
    assert (organization["in_chain"], organization["skipped"]) == (False, "strict")
    assert summary["fall_through"] is False


# --- concurrency ---------------------------------------------------------------------------------

THREADS = 40


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("place", ["orm", "fast"])
def test_concurrent_holds_against_two_small_wallets_never_overspend_either(place):
    """The team affords 6 holds of 0.25, the organization 9: of 40 racing requests exactly 15
    are held, each on one wallet, and neither wallet's available ever goes below zero. Another
    organization's identical chain races too and keeps to its own wallets."""
    chains = []
    for team, org in (("1.50", "2.25"), ("0.50", "0.75")):
        organization = OrganizationFactory()
        department = DepartmentFactory(organization=organization, team_id="team_engineering")
        services.wallet_allocate(department=department, amount=Decimal(team), currency="USD")
        services.wallet_credit(organization=organization, amount=Decimal(org), currency="USD")
        chains.append(wallet_chain(organization=organization, department=department))
    ours, theirs = chains
    targets = [ours] * THREADS + [theirs] * 10
    start = threading.Barrier(len(targets))
    placed, refused, errors = [], [], []

    def run(n, chain):
        try:
            start.wait()
            try:
                placed.append(
                    PLACE[place](wallets=chain, amount=Decimal("0.25"), request_id=f"c{n}")
                )
            except InsufficientFunds:
                refused.append(chain)
        except Exception as exc:  # noqa: BLE001 - reported by the test, not swallowed
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    close_old_connections()

    assert errors == []
    for chain, team_holds, org_holds in ((ours, 6, 9), (theirs, 2, 3)):
        team, organization = (Wallet.objects.get(pk=w.pk) for w in chain)
        assert (team.held, team.available) == (Decimal("0.25") * team_holds, 0)
        assert (organization.held, organization.available) == (Decimal("0.25") * org_holds, 0)
        assert Hold.objects.filter(wallet=team).count() == team_holds
        assert Hold.objects.filter(wallet=organization).count() == org_holds
        assert set(
            Hold.objects.filter(wallet__in=chain).values_list("organization_id", flat=True)
        ) == {team.organization_id}
    assert refused.count(ours) == THREADS - 15
    assert refused.count(theirs) == 10 - 5
    assert Hold.objects.count() == len(placed) == 20
