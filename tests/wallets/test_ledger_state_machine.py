"""A Hypothesis state machine drives the ledger services in random order against PostgreSQL and
checks, after every step, that the wallet row agrees with its ledger and holds and with a plain
Python model of what should have happened."""

import os
from datetime import timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.db.models import Count, Sum
from django.utils import timezone
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from chargeback.errors import IdempotencyConflict, InsufficientFunds
from chargeback.money import ZERO, quantize
from tests.factories import DepartmentFactory, OrganizationFactory
from wallets import services
from wallets.models import Hold, LedgerEntry, Wallet

_examples = count()

amounts = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("300"), places=8)
# How a capture relates to its hold: nothing, below, exactly, above.
capture_factors = st.sampled_from([Decimal(0), Decimal("0.37"), Decimal(1), Decimal("1.5")])
keys = st.none() | st.sampled_from(["key-a", "key-b", "key-c"])


class LedgerMachine(RuleBasedStateMachine):
    pending_holds = Bundle("pending_holds")
    resolved_holds = Bundle("resolved_holds")

    def __init__(self):
        super().__init__()
        n = next(_examples)
        organization = OrganizationFactory(slug=f"sm-{n}", wallet_enforcement=True)
        self.department = DepartmentFactory(organization=organization, team_id=f"team_sm_{n}")
        self.wallet = services.wallet_for_team(department=self.department)
        self.n = n
        self.requests = count()
        # The model.
        self.balance = ZERO
        self.pending: dict[int, Decimal] = {}
        self.resolutions: dict[int, str] = {}
        self.captured: dict[int, Decimal] = {}
        self.keys: dict[str, tuple[Decimal, int]] = {}
        self.overdrawn_by_capture = False
        # Another organization with a team of the same team_id, funded with the same idempotency
        # keys and holding a pending hold: no step here may move, replay or sweep any of it.
        outsider = OrganizationFactory(slug=f"sm-outsider-{n}", wallet_enforcement=True)
        twin = DepartmentFactory(organization=outsider, team_id=f"team_sm_{n}")
        for key in ("key-a", "key-b", "key-c"):
            services.wallet_allocate(
                department=twin, amount=Decimal("7"), currency="USD", idempotency_key=key
            )
        self.outsider_wallet = services.wallet_for_team(department=twin)
        services.hold_place(
            wallet=self.outsider_wallet, amount=Decimal("5"), request_id=f"sm{n}-outsider"
        )

    @property
    def available(self):
        return self.balance - sum(self.pending.values(), ZERO)

    # --- rules ---------------------------------------------------------------------------------

    @rule(amount=amounts, key=keys)
    def allocate(self, amount, key):
        known = self.keys.get(key) if key else None
        if known is not None and known[0] != amount:
            with pytest.raises(IdempotencyConflict):
                services.wallet_allocate(
                    department=self.department, amount=amount, currency="USD", idempotency_key=key
                )
            return
        entry, created = services.wallet_allocate(
            department=self.department, amount=amount, currency="USD", idempotency_key=key
        )
        if known is not None:  # a replay: the first entry, nothing added
            assert not created
            assert entry.pk == known[1]
            return
        assert created
        self.balance += amount
        assert entry.balance_after == self.balance
        if key:
            self.keys[key] = (amount, entry.pk)

    @rule(target=pending_holds, amount=amounts)
    def place_hold(self, amount):
        request_id = f"sm{self.n}-{next(self.requests)}"
        if amount > self.available:
            with pytest.raises(InsufficientFunds):
                services.hold_place(wallet=self.wallet, amount=amount, request_id=request_id)
            assert not Hold.objects.filter(request_id=request_id).exists()
            return multiple()
        hold = services.hold_place(wallet=self.wallet, amount=amount, request_id=request_id)
        self.pending[hold.pk] = amount
        return hold

    @rule(target=resolved_holds, hold=consumes(pending_holds), factor=capture_factors)
    def capture(self, hold, factor):
        amount = quantize(hold.amount * factor)  # the service stores 8 places, half up
        free = self.available  # what the wallet could pay beyond its holds
        entry = services.hold_capture(hold=hold, amount=amount)
        del self.pending[hold.pk]
        if amount == ZERO:
            assert entry is None
            self.resolutions[hold.pk] = Hold.Status.RELEASED
            return hold
        assert entry is not None
        assert entry.amount == -amount
        self.balance -= amount
        self.resolutions[hold.pk] = Hold.Status.CAPTURED
        self.captured[hold.pk] = amount
        if amount - hold.amount > free:
            # The provider billed more than the worst case and the free funds: the wallet owes it.
            self.overdrawn_by_capture = True
        return hold

    @rule(target=resolved_holds, hold=consumes(pending_holds))
    def release(self, hold):
        assert services.hold_release(hold=hold) is True
        del self.pending[hold.pk]
        self.resolutions[hold.pk] = Hold.Status.RELEASED
        return hold

    @rule(target=resolved_holds, hold=consumes(pending_holds))
    def expire(self, hold):
        now = timezone.now()
        Hold.objects.filter(pk=hold.pk).update(expires_at=now - timedelta(seconds=1))
        swept = services.holds_expire(now=now)
        assert [h.pk for h in swept] == [hold.pk]
        del self.pending[hold.pk]
        self.resolutions[hold.pk] = Hold.Status.EXPIRED
        return hold

    @rule(hold=resolved_holds, factor=capture_factors)
    def resolve_again(self, hold, factor):
        # A late capture, release or sweep of a resolved hold changes nothing.
        assert services.hold_capture(hold=hold, amount=hold.amount * factor + 1) is None
        assert services.hold_release(hold=hold) is False
        now = timezone.now()
        Hold.objects.filter(pk=hold.pk).update(expires_at=now - timedelta(seconds=1))
        assert services.holds_expire(now=now) == []

    # --- invariants (one method: three queries per step keep the run short) -----------------

    @invariant()
    def the_wallet_agrees_with_its_ledger_its_holds_and_the_model(self):
        wallet = Wallet.objects.get(pk=self.wallet.pk)
        ledger = LedgerEntry.objects.filter(wallet=wallet).aggregate(total=Sum("amount"))["total"]
        holds = list(
            Hold.objects.filter(wallet=wallet).annotate(captures=Count("entries", distinct=True))
        )

        # balance == sum of ledger entries
        assert wallet.balance == (ledger or ZERO) == self.balance
        # held == sum of pending holds
        pending = sum((h.amount for h in holds if h.status == Hold.Status.PENDING), ZERO)
        assert wallet.held == pending == sum(self.pending.values(), ZERO)
        # available >= 0 with enforcement (a capture above hold and free funds is the one way
        # below zero: the provider billed it, so the ledger records the debt)
        assert wallet.available == self.available
        if not self.overdrawn_by_capture:
            assert wallet.available >= ZERO
        # each hold resolved exactly once, a capture entry only for a captured hold
        for hold in holds:
            expected = self.resolutions.get(hold.pk, Hold.Status.PENDING)
            assert hold.status == expected
            assert (hold.resolved_at is None) == (expected == Hold.Status.PENDING)
            if expected == Hold.Status.CAPTURED:
                assert hold.captures == 1
                assert hold.captured_amount == self.captured[hold.pk]
            else:
                assert hold.captures == 0

    def teardown(self):
        wallet = Wallet.objects.get(pk=self.outsider_wallet.pk)
        assert (wallet.balance, wallet.held) == (Decimal("21"), Decimal("5"))
        assert wallet.entries.count() == 3
        assert wallet.holds.get().status == Hold.Status.PENDING


_NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.explain]


@pytest.mark.django_db
def test_the_ledger_keeps_its_invariants_under_any_sequence_of_operations():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=20,
            deadline=None,
            database=None,
            # Shrinking a failure against the database can take minutes on a shared machine:
            # opt in with HYPOTHESIS_SHRINK=1 to get the minimal failing sequence.
            phases=list(Phase) if os.environ.get("HYPOTHESIS_SHRINK") else _NO_SHRINK,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
