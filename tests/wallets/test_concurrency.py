"""Real threads, real PostgreSQL transactions: the wallet cannot be overspent."""

import threading
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection

from chargeback.errors import IdempotencyConflict, InsufficientFunds
from tests.factories import DepartmentFactory, OrganizationFactory
from wallets import services
from wallets.models import Hold, LedgerEntry, Wallet

THREADS = 50
AFFORDABLE = 20


def _in_thread(fn, errors):
    def run():
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - reported by the test, not swallowed
            errors.append(exc)
        finally:
            connection.close()

    return threading.Thread(target=run)


def _funded_twins(affordable, outsider_affordable):
    """Teams of the same team_id in two organizations, each funded for a number of
    1.25 holds: a hold on one wallet must never take (or be refused for) the other's funds."""
    ours = DepartmentFactory(organization=OrganizationFactory(), team_id="team_engineering")
    theirs = DepartmentFactory(organization=OrganizationFactory(), team_id="team_engineering")
    for department, n in ((ours, affordable), (theirs, outsider_affordable)):
        services.wallet_allocate(department=department, amount=Decimal("1.25") * n, currency="USD")
    return services.wallet_for_team(department=ours), services.wallet_for_team(department=theirs)


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_holds_on_a_wallet_that_affords_twenty_exactly_twenty_succeed():
    # Ten holds on another organization's wallet of the same name (it affords five) race too.
    wallet, outsider_wallet = _funded_twins(AFFORDABLE, 5)
    targets = [wallet] * THREADS + [outsider_wallet] * 10
    start = threading.Barrier(len(targets))
    placed, refused, errors, samples = [], [], [], []
    done = threading.Event()

    def place(n, target):
        def go():
            start.wait()
            try:
                placed.append(
                    services.hold_place(wallet=target, amount=Decimal("1.25"), request_id=f"c{n}")
                )
            except InsufficientFunds:
                refused.append(target.pk)

        return go

    def watch():
        # Samples what other transactions have committed while the holds race.
        while not done.is_set():
            row = Wallet.objects.values("balance", "held").get(pk=wallet.pk)
            samples.append(row["balance"] - row["held"])

    watcher = _in_thread(watch, errors)
    threads = [_in_thread(place(n, target), errors) for n, target in enumerate(targets)]
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done.set()
    watcher.join(timeout=10)
    close_old_connections()

    assert errors == []
    assert len([h for h in placed if h.wallet_id == wallet.pk]) == AFFORDABLE
    assert refused.count(wallet.pk) == THREADS - AFFORDABLE
    wallet.refresh_from_db()
    assert wallet.available == Decimal("0")
    assert wallet.held == Decimal("25.00")
    assert Hold.objects.filter(wallet=wallet, status="pending").count() == AFFORDABLE
    assert samples
    assert min(samples) >= 0
    # The outsider's wallet: exactly its own five, its own organization on every hold.
    outsider_wallet.refresh_from_db()
    assert (outsider_wallet.balance, outsider_wallet.held) == (Decimal("6.25"), Decimal("6.25"))
    assert refused.count(outsider_wallet.pk) == 5
    theirs = Hold.objects.filter(wallet=outsider_wallet)
    assert set(theirs.values_list("organization_id", flat=True)) == {
        outsider_wallet.organization_id
    }
    assert theirs.count() == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_captures_and_releases_of_one_hold_charge_it_once():
    organization = OrganizationFactory()
    department = DepartmentFactory(organization=organization)
    services.wallet_allocate(department=department, amount=Decimal("10"), currency="USD")
    wallet = services.wallet_for_team(department=department)
    hold = services.hold_place(wallet=wallet, amount=Decimal("4"), request_id="race")
    start = threading.Barrier(10)
    results, errors = [], []

    def resolve(n):
        def go():
            start.wait()
            if n % 2:
                results.append(services.hold_capture(hold=hold, amount=Decimal("3")))
            else:
                results.append(services.hold_release(hold=hold))

        return go

    threads = [_in_thread(resolve(n), errors) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    close_old_connections()

    assert errors == []
    winners = [r for r in results if r not in (None, False)]
    assert len(winners) == 1
    wallet.refresh_from_db()
    assert wallet.held == Decimal("0")
    captures = LedgerEntry.objects.filter(hold=hold).count()
    assert wallet.balance == (Decimal("7") if captures else Decimal("10"))
    assert captures <= 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_idempotency_key_allocate_once():
    organization = OrganizationFactory()
    teams = [DepartmentFactory(organization=organization) for _ in range(2)]
    # Another organization's client uses the same key at the same moment, for its own team of
    # the same team_id: a key is the organization's own, so that is a request of its own.
    outsider_team = DepartmentFactory(organization=OrganizationFactory(), team_id=teams[0].team_id)
    start = threading.Barrier(14)
    created, conflicts, errors, outsiders = [], [], [], []

    def allocate(n):
        def go():
            start.wait()
            try:
                # Six retries of one request, four of another request with the same key on
                # another team (a client bug): only one of them may ever apply.
                entry, was_created = services.wallet_allocate(
                    department=teams[n % 2 if n < 8 else 0],
                    amount=Decimal("100"),
                    currency="USD",
                    idempotency_key="once",
                )
                created.append((entry.pk, was_created, entry.wallet_id))
            except IdempotencyConflict:
                conflicts.append(n)

        return go

    def allocate_outsider():
        start.wait()
        entry, was_created = services.wallet_allocate(
            department=outsider_team, amount=Decimal("70"), currency="USD", idempotency_key="once"
        )
        outsiders.append((entry.pk, was_created))

    threads = [_in_thread(allocate(n), errors) for n in range(10)]
    threads += [_in_thread(allocate_outsider, errors) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    close_old_connections()

    assert errors == []  # never an IntegrityError, never a conflict with the outsider's request
    # Once: the auto_fund credit and the transfer's two entries.
    assert LedgerEntry.objects.filter(organization=organization).count() == 3
    entry = LedgerEntry.objects.get(organization=organization, wallet__scope="team")
    assert sum(1 for _, was_created, _ in created if was_created) == 1
    assert {pk for pk, _, _ in created} == {entry.pk}
    assert len(created) + len(conflicts) == 10
    winner_requests = 6 if entry.wallet.department_id == teams[0].pk else 4
    assert len(created) == winner_requests
    theirs = LedgerEntry.objects.get(organization=outsider_team.organization, wallet__scope="team")
    assert (theirs.amount, theirs.wallet.department_id) == (Decimal("70"), outsider_team.pk)
    assert sorted(outsiders) == [(theirs.pk, False)] * 3 + [(theirs.pk, True)]
