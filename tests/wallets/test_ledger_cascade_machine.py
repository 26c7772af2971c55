"""The ledger state machine (test_ledger_state_machine.py) widened to the three wallets of a
cascade: credits, allocations (organization -> team, team -> user) under either allocation
policy, reclaims, holds placed on the first wallet that can pay (ORM and one-statement paths,
strict or not), captures, releases, expiries and refunds, in any order, against PostgreSQL.
Requests priced in another currency (GBP prices, USD wallets) are held and captured at the
exchange rate in force (rates added at any step, gateway/exchange.py), converted by the one
rounding rule: the captured amount is the conversion of the price-currency cost at the rate the
hold was priced with, and money is conserved all the same. Cost tickets: a request no wallet of
the chain can cover opens one on the chain's last wallet; finance approves or denies it; an
approved ticket is redeemed once, by a retry whose worst case is within its estimate, as a hold
on that wallet past zero if need be (wallets/tickets/services.py).

After every step: each wallet's balance = the sum of its entries = the model's; held = its
pending holds; the sum of all balances = credits - captures + refunds (transfers move money,
never create it); each transfer is two entries that cancel out."""

import os
from datetime import timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.db.models import Count, Sum
from django.utils import timezone
from hypothesis import HealthCheck, Phase, event, settings
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

from chargeback.errors import Conflict, InsufficientFunds
from chargeback.money import ZERO, convert, quantize
from gateway.exchange import exchange_rate_create, rate_for
from tests.factories import DepartmentFactory, OrganizationFactory
from wallets import services
from wallets.cascade import wallet_chain
from wallets.models import Hold, LedgerEntry, Wallet
from wallets.models_tickets import CostTicket
from wallets.tickets.services import (
    TicketRefused,
    ticket_approve,
    ticket_deny,
    ticket_open,
    ticket_redeem,
)

_examples = count()

amounts = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("300"), places=8)
capture_factors = st.sampled_from([Decimal(0), Decimal("0.37"), Decimal(1), Decimal("1.5")])
rates = st.decimals(min_value=Decimal("0.5"), max_value=Decimal("2"), places=10)
SCOPES = ("user", "team", "organization")


class CascadeLedgerMachine(RuleBasedStateMachine):
    captured_holds = Bundle("captured_holds")
    pending_holds = Bundle("pending_holds")
    pending_tickets = Bundle("pending_tickets")
    approved_tickets = Bundle("approved_tickets")

    def __init__(self):
        super().__init__()
        n = self.n = next(_examples)
        self.organization = OrganizationFactory(slug=f"cm-{n}", wallet_enforcement=True)
        self.department = DepartmentFactory(organization=self.organization, team_id=f"team_cm_{n}")
        self.wallets = {
            "user": services.wallet_for_user(
                organization=self.organization, user_ref="alice", department=self.department
            ),
            "team": services.wallet_for_team(department=self.department),
            "organization": services.wallet_for_organization(organization=self.organization),
        }
        self.requests = count()
        # The model.
        self.balance = dict.fromkeys(SCOPES, ZERO)
        self.pending: dict[int, tuple[str, Decimal]] = {}
        self.resolutions: dict[int, str] = {}
        self.charged: dict[int, Decimal] = {}  # hold pk -> captured minus refunded
        self.credits = self.captures = self.refunds = ZERO
        self.strict_policy = False
        self.fall_through = True
        self.overdrawn = False
        self.rate = None  # the GBP -> USD rate in force (the last one added)
        self.priced: dict[int, tuple[Decimal, Decimal]] = {}  # hold pk -> (GBP worst, rate)
        self.tickets: dict[str, str] = {}  # ticket id -> status
        # Another organization of the same team id, funded and holding: never touched.
        outsider = OrganizationFactory(slug=f"cm-outsider-{n}")
        twin = DepartmentFactory(organization=outsider, team_id=f"team_cm_{n}")
        services.wallet_allocate(department=twin, amount=Decimal("7"), currency="USD")
        self.outsider_team = services.wallet_for_team(department=twin)
        services.hold_place(wallet=self.outsider_team, amount=Decimal("5"), request_id=f"cm{n}-o")

    def available(self, scope: str) -> Decimal:
        held = sum((a for s, a in self.pending.values() if s == scope), ZERO)
        return self.balance[scope] - held

    # --- money in and between wallets ---------------------------------------------------------

    @rule(amount=amounts)
    def credit(self, amount):
        services.wallet_credit(organization=self.organization, amount=amount, currency="USD")
        self.balance["organization"] += amount
        self.credits += amount

    @rule(strict=st.booleans())
    def set_allocation_policy(self, strict):
        self.organization.allocation_policy = "strict" if strict else "auto_fund"
        self.organization.save(update_fields=["allocation_policy"])
        self.strict_policy = strict

    @rule(amount=amounts, to_user=st.booleans())
    def allocate(self, amount, to_user):
        source, destination = ("team", "user") if to_user else ("organization", "team")
        shortfall = amount - self.available(source)
        user_ref = "alice" if to_user else ""
        if shortfall > 0 and self.strict_policy:
            before = LedgerEntry.objects.count()
            with pytest.raises(Conflict) as exc:
                services.wallet_allocate(
                    department=self.department, amount=amount, currency="USD", user_ref=user_ref
                )
            assert exc.value.extra["available"] == self.available(source)
            assert LedgerEntry.objects.count() == before
            return
        entry, created = services.wallet_allocate(
            department=self.department, amount=amount, currency="USD", user_ref=user_ref
        )
        assert created
        if shortfall > 0:  # auto_fund: a labelled credit to the organization first
            org_short = shortfall
            if source == "team":  # what the organization lacks to give the team its shortfall
                org_short = shortfall - self.available("organization")
            if org_short > 0:
                self.balance["organization"] += org_short
                self.credits += org_short
            if source == "team":
                self.balance["organization"] -= shortfall
                self.balance["team"] += shortfall
        self.balance[source] -= amount
        self.balance[destination] += amount
        assert entry.amount == amount
        assert entry.balance_after == self.balance[destination]
        assert entry.wallet_id == self.wallets[destination].pk

    @rule(amount=st.none() | amounts)
    def reclaim(self, amount):
        available = self.available("team")
        wanted = available if amount is None else amount
        if wanted > available or wanted <= 0:
            with pytest.raises(InsufficientFunds):
                services.wallet_reclaim(department=self.department, amount=amount)
            return
        services.wallet_reclaim(department=self.department, amount=amount)
        self.balance["team"] -= wanted
        self.balance["organization"] += wanted

    @rule(fall_through=st.booleans())
    def set_fall_through(self, fall_through):
        self.department.fall_through = fall_through
        self.department.save(update_fields=["fall_through"])
        self.fall_through = fall_through

    # --- requests ------------------------------------------------------------------------------

    @rule(target=pending_holds, amount=amounts, path=st.sampled_from(["reserve", "orm"]))
    def place_hold(self, amount, path):
        return self._place(amount, path)

    @rule(rate=rates)
    def add_rate(self, rate):
        exchange_rate_create(
            organization=self.organization,
            from_currency="GBP",
            to_currency="USD",
            rate=rate,
            effective_from=timezone.now(),
            actor="test",
            via="api",
        )
        self.rate = rate

    @rule(target=pending_holds, price_amount=amounts, path=st.sampled_from(["reserve", "orm"]))
    def place_priced_hold(self, price_amount, path):
        """A request priced in GBP: its worst case converted at the rate in force now."""
        rate = rate_for(
            organization_id=self.organization.pk, source="GBP", target="USD", at=timezone.now()
        )
        assert rate == self.rate
        if rate is None:  # the gateway refuses it (400) before any hold
            return multiple()
        hold = self._place(convert(price_amount, rate), path)
        if not hasattr(hold, "pk"):  # refused: no wallet could cover it
            return hold
        self.priced[hold.pk] = (price_amount, rate)
        event("a GBP-priced hold")  # --hypothesis-show-statistics: how often this ran
        return hold

    @rule(target=captured_holds, price_amount=amounts, factor=capture_factors)
    def priced_request(self, price_amount, factor):
        """A whole GBP-priced request: held and captured at once, at the same rate."""
        hold = self.place_priced_hold(price_amount, "reserve")
        if not hasattr(hold, "pk"):
            return multiple()
        return self.capture(hold, factor)

    def _place(self, amount, path):
        chain = wallet_chain(
            organization=self.organization, department=self.department, user_ref="alice"
        )
        scopes = ["user", "team"] + (["organization"] if self.fall_through else [])
        assert [w.scope for w in chain] == scopes
        place = services.hold_reserve if path == "reserve" else services.hold_place_cascade
        request_id = f"cm{self.n}-{next(self.requests)}"
        payer = next((s for s in scopes if self.available(s) >= amount), None)
        if payer is None:
            with pytest.raises(InsufficientFunds):
                place(wallets=chain, amount=amount, request_id=request_id)
            assert not Hold.objects.filter(request_id=request_id).exists()
            return multiple()
        hold = place(wallets=chain, amount=amount, request_id=request_id)
        assert hold.wallet_id == self.wallets[payer].pk
        self.pending[hold.pk] = (payer, quantize(amount))
        return hold

    # --- cost tickets ------------------------------------------------------------------------

    @rule(target=pending_tickets, amount=amounts)
    def refused_request(self, amount):
        """A request no wallet of the chain can cover: refused, and a ticket opened on the
        chain's last wallet (gateway/tickets.py) with its worst case as the estimate."""
        chain = wallet_chain(
            organization=self.organization, department=self.department, user_ref="alice"
        )
        if any(self.available(w.scope) >= amount for w in chain):
            return multiple()  # it would be held, not refused
        request_id = f"cm{self.n}-{next(self.requests)}"
        with pytest.raises(InsufficientFunds):
            services.hold_reserve(wallets=chain, amount=amount, request_id=request_id)
        ticket = ticket_open(
            wallet=chain[-1],
            department_id=self.department.pk,
            consumer_group_id=None,
            user_ref="alice",
            model="gpt-4o",
            estimate=amount,
            request_id=request_id,
        )
        self.tickets[ticket.ticket_id] = "pending"
        event("a cost ticket")
        return ticket

    @rule(target=approved_tickets, ticket=consumes(pending_tickets), approve=st.booleans())
    def decide(self, ticket, approve):
        decide = ticket_approve if approve else ticket_deny
        decide(organization=self.organization, ticket_id=ticket.ticket_id, actor="t", via="api")
        self.tickets[ticket.ticket_id] = "approved" if approve else "denied"
        return ticket if approve else multiple()

    @rule(
        target=pending_holds,
        ticket=approved_tickets,
        part=st.sampled_from([Decimal("0.5"), Decimal(1), Decimal("1.5")]),
    )
    def redeem(self, ticket, part):
        """A retry carrying the ticket: held once, within the estimate, past zero if need be."""
        amount = quantize(ticket.estimate * part)
        request_id = f"cm{self.n}-{next(self.requests)}"
        arguments = {
            "organization_id": self.organization.pk,
            "consumer_group_id": None,
            "ticket_id": ticket.ticket_id,
            "amount": amount,
            "request_id": request_id,
            "department_id": self.department.pk,
        }
        if self.tickets[ticket.ticket_id] != "approved" or amount > ticket.estimate:
            before = LedgerEntry.objects.count(), Hold.objects.count()
            with pytest.raises(TicketRefused):
                ticket_redeem(**arguments)
            assert (LedgerEntry.objects.count(), Hold.objects.count()) == before
            return multiple()
        hold = ticket_redeem(**arguments)
        scope = next(s for s, w in self.wallets.items() if w.pk == ticket.wallet_id)
        assert hold.wallet_id == ticket.wallet_id
        assert hold.amount == amount
        if amount > self.available(scope):
            self.overdrawn = True  # the approved overdraft, at most the estimate
        self.pending[hold.pk] = (scope, amount)
        self.tickets[ticket.ticket_id] = "redeemed"
        event("a redeemed cost ticket")
        return hold

    @rule(
        target=pending_holds,
        amount=amounts,
        part=st.sampled_from([Decimal("0.5"), Decimal(1), Decimal("1.5")]),
    )
    def refused_approved_and_retried(self, amount, part):
        """The whole ticket flow in one step (a refusal, finance's approval, the retry), so that
        redemptions are frequent among the other steps."""
        ticket = self.refused_request(amount)
        if not isinstance(ticket, CostTicket):
            return multiple()
        self.decide(ticket, approve=True)
        return self.redeem(ticket, part)

    @rule(target=captured_holds, hold=consumes(pending_holds), factor=capture_factors)
    def capture(self, hold, factor):
        scope, held = self.pending[hold.pk]
        amount = quantize(held * factor)
        if hold.pk in self.priced:  # the GBP cost, converted at the hold's rate
            price_worst, rate = self.priced[hold.pk]
            amount = convert(quantize(price_worst * factor), rate)
            assert factor > 1 or amount <= held  # within the worst case, never above the hold
            event("a GBP-priced capture")
        free = self.available(scope)
        entry = services.hold_capture(hold=hold, amount=amount)
        del self.pending[hold.pk]
        if amount == ZERO:
            assert entry is None
            self.resolutions[hold.pk] = Hold.Status.RELEASED
            return multiple()
        self.balance[scope] -= amount
        self.captures += amount
        self.resolutions[hold.pk] = Hold.Status.CAPTURED
        self.charged[hold.pk] = amount
        if amount - held > free:
            self.overdrawn = True
        return hold

    @rule(hold=consumes(pending_holds), expire=st.booleans())
    def release_or_expire(self, hold, expire):
        if expire:
            now = timezone.now()
            Hold.objects.filter(pk=hold.pk).update(expires_at=now - timedelta(seconds=1))
            assert [h.pk for h in services.holds_expire(now=now)] == [hold.pk]
            self.resolutions[hold.pk] = Hold.Status.EXPIRED
        else:
            assert services.hold_release(hold=hold) is True
            self.resolutions[hold.pk] = Hold.Status.RELEASED
        del self.pending[hold.pk]

    @rule(hold=captured_holds, part=st.sampled_from([Decimal("0.5"), Decimal(1), Decimal(2)]))
    def refund(self, hold, part):
        scope = next(s for s, w in self.wallets.items() if w.pk == hold.wallet_id)
        amount = quantize(self.charged[hold.pk] * part / 2)
        left = self.charged[hold.pk]
        if amount <= 0 or amount > left:
            if amount > left:
                with pytest.raises(Conflict):
                    services.wallet_refund(
                        organization=self.organization,
                        request_id=hold.request_id,
                        amount=amount,
                        reason="test",
                    )
            return
        services.wallet_refund(
            organization=self.organization, request_id=hold.request_id, amount=amount, reason="t"
        )
        self.balance[scope] += amount
        self.refunds += amount
        self.charged[hold.pk] -= amount

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def every_wallet_and_the_whole_agree_with_the_ledger_and_the_model(self):
        rows = {w.pk: w for w in Wallet.objects.filter(organization=self.organization)}
        sums = dict(
            LedgerEntry.objects.filter(organization=self.organization)
            .values_list("wallet_id")
            .annotate(total=Sum("amount"))
        )
        for scope, handle in self.wallets.items():
            wallet = rows[handle.pk]
            assert wallet.balance == sums.get(wallet.pk, ZERO) == self.balance[scope]
            pending = sum((a for s, a in self.pending.values() if s == scope), ZERO)
            assert wallet.held == pending
            if not self.overdrawn:
                assert wallet.available >= ZERO
        total = sum((w.balance for w in rows.values()), ZERO)
        assert total == self.credits - self.captures + self.refunds
        # Each transfer: two entries that cancel out.
        transfers = (
            LedgerEntry.objects.filter(organization=self.organization)
            .exclude(transfer_id="")
            .values("transfer_id")
            .annotate(n=Count("id"), total=Sum("amount"))
        )
        assert all(t["n"] == 2 and t["total"] == 0 for t in transfers)
        statuses = dict(
            Hold.objects.filter(organization=self.organization).values_list("pk", "status")
        )
        for pk, status in statuses.items():
            assert status == self.resolutions.get(pk, Hold.Status.PENDING)
        tickets = dict(
            CostTicket.objects.filter(organization=self.organization).values_list(
                "ticket_id", "status"
            )
        )
        assert tickets == self.tickets

    def teardown(self):
        wallet = Wallet.objects.get(pk=self.outsider_team.pk)
        assert (wallet.balance, wallet.held) == (Decimal("7"), Decimal("5"))


_NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.explain]


@pytest.mark.django_db
def test_money_is_conserved_across_the_cascade_under_any_sequence_of_operations():
    run_state_machine_as_test(
        CascadeLedgerMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            deadline=None,
            database=None,
            phases=list(Phase) if os.environ.get("HYPOTHESIS_SHRINK") else _NO_SHRINK,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
