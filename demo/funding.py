"""The demo's money, dated when it is meant to have happened (before the usage it pays for), so
each ledger reads in order and a month's chargeback row shows that month's allocations and the
balance at its end: the organization's wallet is credited just before the first month funded,
and each team's allocations are transfers from it (two entries, one transfer id, as
`wallet_allocate` writes them). The entries are appended with the captures, in time order,
through the ledger's rule for bulk writers (wallets/ledger.py ledger_append_many), and audited
as the services would."""

import math
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from chargeback.audit import audit_record
from chargeback.models import Organization
from demo.catalog import APRIL, MAY, TEAMS, Team
from gateway.models import UsageEvent
from wallets.ledger import ledger_append_many
from wallets.models import LedgerEntry
from wallets.services import wallet_for_organization, wallet_for_team
from wallets.services.transfers import new_transfer_id

BATCH = 2000
AUDITED = {
    LedgerEntry.Kind.ALLOCATION: "wallet.allocation",
    LedgerEntry.Kind.CREDIT: "wallet.credit",
}


def spring_allocations(team: Team) -> list[tuple[date, Decimal]]:
    """April's funding (April plus a margin) on April 1, the rest of the spring's (both months
    plus 10 %) on May 1."""
    spring = Decimal(math.ceil(sum(team.targets.values()) * Decimal("1.1") / 1000) * 1000)
    april = Decimal(math.ceil(team.targets[APRIL] * Decimal("1.1") / 1000) * 1000)
    return [(APRIL, april), (MAY, spring - april)]


def fund(
    organization: Organization,
    departments: dict,
    funding: dict[str, list[tuple[date, Decimal]]],
    *,
    reserve: Decimal = Decimal(0),
) -> tuple[dict, dict]:
    """The wallets ({team_id: wallet}, the organization's under "") and their funding entries
    ({wallet pk: [entry]}) for `funding` ({team_id: [(month, amount)]}): a credit of the total
    plus `reserve` to the organization just before the first month, then a transfer to each team
    at the first moment of each month."""
    org_wallet = wallet_for_organization(organization=organization)
    wallets, entries = {"": org_wallet}, {org_wallet.pk: []}
    first = min(month for months in funding.values() for month, _ in months)
    total = sum(amount for months in funding.values() for _, amount in months) + reserve
    entries[org_wallet.pk].append(
        {
            "kind": LedgerEntry.Kind.CREDIT,
            "amount": total,
            "description": f"Demo top-up from {first:%B %Y}",
            "idempotency_key": f"demo-seed-organization-{first:%Y-%m}",
            "actor": "demo_seed",
            "created_at": datetime.combine(first, time.min, tzinfo=organization.tz)
            - timedelta(seconds=1),
        }
    )
    for team in TEAMS:
        wallet = wallet_for_team(department=departments[team.team_id])
        wallets[team.team_id], entries[wallet.pk] = wallet, []
        for month, amount in funding.get(team.team_id, []):
            common = {
                "kind": LedgerEntry.Kind.ALLOCATION,
                "description": f"Demo funding for {month:%B %Y}",
                "transfer_id": new_transfer_id(),
                "actor": "demo_seed",
                "created_at": datetime.combine(month, time.min, tzinfo=organization.tz),
            }
            entries[org_wallet.pk].append(
                {**common, "amount": -amount, "reference": f"to:{wallet.name}"}
            )
            entries[wallet.pk].append(
                {
                    **common,
                    "amount": amount,
                    "reference": "from:organization",
                    "idempotency_key": f"demo-seed-{team.team_id}-{month:%Y-%m}",
                }
            )
    return wallets, entries


def ledger_write(events: list[UsageEvent], wallets: dict, funding: dict) -> None:
    """The funding entries and one capture entry per charged event on its wallet, in time
    order, through the ledger's rule: running balances, balance = the sum of the entries."""
    by_wallet = defaultdict(list)
    for wallet_pk, entries in funding.items():
        by_wallet[wallet_pk] += entries
    for event in events:
        if event.cost > 0:
            by_wallet[event.wallet_id].append(
                {
                    "kind": LedgerEntry.Kind.CAPTURE,
                    "amount": -event.cost,
                    "reference": event.request_id,
                    "description": f"{event.model_requested} (demo)",
                    "actor": "demo_seed",
                    "created_at": event.created_at,
                }
            )
    for wallet in wallets.values():
        entries = sorted(by_wallet[wallet.pk], key=lambda e: e["created_at"])
        created = ledger_append_many(wallet, entries, batch_size=BATCH)
        for entry in created:
            action = AUDITED.get(entry.kind)
            if action and entry.amount > 0:  # a transfer is audited once, on its receiving side
                audit_record(
                    organization=wallet.organization,
                    actor="demo_seed",
                    via="system",
                    action=action,
                    obj=wallet,
                    after={
                        "amount": str(entry.amount),
                        "currency": entry.currency,
                        "balance": str(entry.balance_after),
                        "entry": entry.pk,
                    },
                )
