#!/usr/bin/env python3
"""The hold's statement on the common path, before and after the cascade.

  DATABASE_URL=postgres://.../<db> python bench/cascade_hold.py [-n 3000] [--rounds 3]

Times `wallets.services.hold_reserve` (then a fast capture of 0, releasing it, so the wallet
never runs dry) on PostgreSQL for three chains of the `bench-cascade` organization, alternating
them round by round so machine noise hits each alike:

- `one`: the team wallet alone (the single-wallet statement, as before the cascade);
- `team-pays`: team and organization wallets, the team covers it (the cascade statement, the
  common path once an organization wallet exists);
- `fall-through`: user (empty), team (empty) and organization: the organization pays.

Prints the median wall milliseconds per hold for each. Creates what it needs (idempotent).
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django

django.setup()

from chargeback.models import Department, Organization  # noqa: E402
from wallets import services  # noqa: E402
from wallets.cascade import wallet_chain  # noqa: E402
from wallets.fastpath import enabled  # noqa: E402

AMOUNT = Decimal("0.01")


def setup():
    org, _ = Organization.objects.get_or_create(slug="bench-cascade", defaults={"name": "Bench"})
    solo, _ = Department.objects.get_or_create(organization=org, team_id="team_solo")
    pays, _ = Department.objects.get_or_create(organization=org, team_id="team_pays")
    empty, _ = Department.objects.get_or_create(organization=org, team_id="team_empty")
    services.wallet_credit(organization=org, amount=Decimal("1000000"), currency=org.currency)
    for department in (solo, pays):
        services.wallet_allocate(department=department, amount=Decimal("1000"), currency="USD")
    services.wallet_for_team(department=empty)
    services.wallet_for_user(organization=org, user_ref="bench-empty", department=empty)
    one = (services.wallet_for_team(department=solo),)
    team_pays = wallet_chain(organization=org, department=pays)
    fall = wallet_chain(organization=org, department=empty, user_ref="bench-empty")
    assert [len(one), len(team_pays), len(fall)] == [1, 2, 3]
    return {"one": one, "team-pays": team_pays, "fall-through": fall}


def cycle(chain) -> float:
    started = time.perf_counter()
    hold = services.hold_reserve(wallets=chain, amount=AMOUNT, request_id=f"bc_{uuid.uuid4().hex}")
    elapsed = time.perf_counter() - started
    services.hold_release(hold=hold)
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not enabled():
        sys.exit("PostgreSQL only (the fast path)")
    chains = setup()
    for chain in chains.values():  # warm up: prepared statements, caches
        for _ in range(200):
            cycle(chain)
    samples = {name: [] for name in chains}
    for _ in range(args.rounds):
        for name, chain in chains.items():
            samples[name].extend(cycle(chain) for _ in range(args.n // args.rounds))
    for name, values in samples.items():
        values.sort()
        print(
            f"{name:13s} median {statistics.median(values) * 1000:.3f} ms  "
            f"p90 {values[int(len(values) * 0.9)] * 1000:.3f} ms  ({len(values)} holds)"
        )


if __name__ == "__main__":
    main()
