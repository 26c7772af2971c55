"""The demo's months after May 2026, through today: the same teams, mixes and users as the
seed (demo/seed.py), a little more spend each month, so that the dashboards' first view (the
current month), budgets, forecasts and month-to-date columns have something to show.

May 2026 stays exactly the seed's: these months only add events of their own. Each month is
simulated once (idempotent: a month that has demo events is skipped), with its own funding
allocation per team, dated its first moment (demo/funding.py); the current month only up to now, so it reads as month-to-date. These
months are lighter than May (fewer, larger requests) to keep `make run`'s start quick."""

import math
import random
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from chargeback.models import ConsumerGroup, Organization
from chargeback.periods import day_range, local_today, month_end, month_start
from demo.catalog import MAY, TEAMS, PriceBook, Team
from demo.funding import BATCH, fund, ledger_write
from demo.seed import ORG_SLUG, _ensure_tenancy, _team_events
from gateway.models import UsageEvent

GROWTH = Decimal("0.03")  # each month after May spends this much more than May (compounded)
REQUEST_SHARE = 0.15  # of May's requests per month (the seed simulates 40 % for other months)
DEMO_PREFIX = "req_demo_"


def months_after_may(today: date) -> list[date]:
    months, month = [], date(MAY.year, MAY.month + 1, 1)
    while month <= month_start(today):
        months.append(month)
        month = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    return months


def month_target(team: Team, month: date) -> Decimal:
    steps = (month.year - MAY.year) * 12 + month.month - MAY.month
    return (team.targets[MAY] * (1 + GROWTH) ** steps).quantize(Decimal("1"))


def demo_recent(*, organization_slug: str = ORG_SLUG, now: datetime | None = None) -> dict:
    """Simulate every month after May 2026 up to now that has no demo events yet."""
    organization = Organization.objects.get(slug=organization_slug)
    now = now or timezone.now()
    months = months_after_may(local_today(organization))
    created, simulated = 0, []
    for month in months:
        start, end = day_range(organization, month, month_end(month))
        if UsageEvent.objects.filter(
            organization=organization,
            created_at__gte=start,
            created_at__lt=end,
            request_id__startswith=DEMO_PREFIX,
        ).exists():
            continue
        created += _simulate_month(organization, month, now)
        simulated.append(month)
    return {"organization": organization, "created": created, "months": simulated}


def _simulate_month(organization: Organization, month: date, now: datetime) -> int:
    rng = random.Random(f"acme-{month:%Y-%m}")
    prices = PriceBook(organization)
    with transaction.atomic():
        departments = _ensure_tenancy(organization)
        funding = {
            team.team_id: [
                (
                    month,
                    Decimal(math.ceil(month_target(team, month) * Decimal("1.1") / 1000) * 1000),
                )
            ]
            for team in TEAMS
        }
        wallets, entries = fund(organization, departments, funding)
        events = []
        for team in TEAMS:
            dept = departments[team.team_id]
            target = month_target(team, month)
            # `_team_events` simulates 40 % of `requests` outside May.
            simulated = replace(
                team,
                targets={month: target},
                requests=max(20, int(team.requests * REQUEST_SHARE / 0.4)),
            )
            group = ConsumerGroup.objects.filter(organization=organization, department=dept).first()
            events += [
                event
                for event in _team_events(
                    rng=rng,
                    organization=organization,
                    team=simulated,
                    month=month,
                    prices=prices,
                    dept=dept,
                    group=group,
                    wallet=wallets[team.team_id],
                )
                if event.created_at <= now  # the current month: month-to-date only
            ]
        UsageEvent.objects.bulk_create(events, batch_size=BATCH)
        ledger_write(events, wallets, entries)
    return len(events)
