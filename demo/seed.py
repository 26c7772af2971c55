"""The demo organization's simulated spring: April and May 2026 of priced usage events.

May's month-end view matches the seed page to the cent: $62,000.00 in total, engineering
$28,000.00, support $12,000.00, legal $3,000.00, shared internal operations $7,000.00 and the
remaining $12,000.00 over four small teams. April is a slightly smaller month so that the
dashboards have a month-over-month trend.

How the totals come out exact while every event is priced by `gateway.pricing.cost_of`: every
simulated token count is a multiple of the model's "price unit" (the fewest tokens that cost a
whole micro-dollar), so each event costs a whole number of micro-dollars and no rounding ever
happens. Token counts are scaled so that a team's events add up to just under its target, and one
last event (tokens solved for, see `_balancing_usage`) makes up the difference exactly.

Events are written with bulk_create and their captures, with each month's allocation dated the
first moment of its month, through the ledger's rule for bulk writers (wallets/ledger.py
ledger_append_many), in time order, so balance stays the sum of the wallet's ledger and every
entry's running balance is the balance at its moment.
"""

import hashlib
import math
import random
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import transaction

from budgets.models import Budget
from chargeback.audit import audit_record
from chargeback.keys import hash_key, key_prefix
from chargeback.models import ConsumerGroup, Department, Organization
from chargeback.periods import day_range, month_end
from demo.catalog import (
    APRIL,
    FIRST,
    LAST,
    MAY,
    MICRO,
    MODELS,
    TEAMS,
    PriceBook,
    Team,
    price_units,
)
from gateway.models import Price, UsageEvent
from gateway.pricing import Usage, cost_of
from wallets.ledger import ledger_append_many
from wallets.models import LedgerEntry
from wallets.services import wallet_for_organization, wallet_for_team
from wallets.services.transfers import new_transfer_id

ORG_SLUG = "acme"
ORG_NAME = "Acme Corp"
BATCH = 2000
# Each team's simulated events first add up to (target - this); one balancing event adds the rest.
BALANCE_GAP = Decimal("2.00")
# What the organization keeps after funding the teams: the cascade falls through to it.
DEMO_RESERVE = Decimal("5000")


# --- tenancy, wallets, budgets ------------------------------------------------------------------


def _ensure_tenancy(organization: Organization) -> dict:
    """Departments, consumer groups and budgets; existing rows (from the seed config) are kept."""
    departments = {}
    for team in TEAMS:
        dept, _ = Department.objects.get_or_create(
            organization=organization,
            team_id=team.team_id,
            defaults={"name": team.name, "owner_emails": [f"lead-{team.group}@acme.example"]},
        )
        departments[team.team_id] = dept
        if not ConsumerGroup.objects.filter(organization=organization, department=dept).exists():
            raw = f"kt_cg_{team.group.replace('-', '_')}_prod"
            ConsumerGroup.objects.get_or_create(
                organization=organization,
                name=team.group,
                defaults={
                    "department": dept,
                    "key_prefix": key_prefix(raw),
                    "key_hash": hash_key(raw),
                },
            )
        Budget.objects.get_or_create(
            department=dept,
            period=Budget.Period.MONTH,
            defaults={
                "organization": organization,
                "amount": team.budget,
                "currency": organization.currency,
                "thresholds": [50, 80, 100],
                "owner_emails": [f"lead-{team.group}@acme.example"],
            },
        )
    return departments


def _allocations(team: Team) -> list[tuple[date, Decimal]]:
    """Each month's funding, dated the first moment of the month it is for: enough for April
    plus a margin on April 1, the rest of the spring's (both months plus 10 %) on May 1."""
    spring = Decimal(math.ceil(sum(team.targets.values()) * Decimal("1.1") / 1000) * 1000)
    april = Decimal(math.ceil(team.targets[APRIL] * Decimal("1.1") / 1000) * 1000)
    return [(APRIL, april), (MAY, spring - april)]


def _fund(organization: Organization, departments: dict) -> tuple[dict, dict]:
    """The wallets and their funding entries, dated when they are meant to have happened (before
    the usage they pay for), so each ledger reads in order and a month's chargeback row shows
    that month's allocations and the balance at its end: the organization's wallet is credited
    on April 1 with the spring's funding plus a reserve the cascade can fall through to, and
    each team's allocations are transfers from it (two entries, one transfer id, as
    `wallet_allocate` writes them). They are appended with the captures, in time order
    (`_ledger`), and audited as the services would."""
    org_wallet = wallet_for_organization(organization=organization)
    wallets, entries = {"": org_wallet}, {org_wallet.pk: []}
    funding = {team.team_id: _allocations(team) for team in TEAMS}
    first = datetime.combine(APRIL, time.min, tzinfo=organization.tz)
    entries[org_wallet.pk].append(
        {
            "kind": LedgerEntry.Kind.CREDIT,
            "amount": sum(a for months in funding.values() for _, a in months) + DEMO_RESERVE,
            "description": "Demo top-up for April and May 2026",
            "idempotency_key": "demo-seed-organization-2026-spring",
            "actor": "demo_seed",
            "created_at": first - timedelta(seconds=1),
        }
    )
    for team in TEAMS:
        wallet = wallet_for_team(department=departments[team.team_id])
        wallets[team.team_id] = wallet
        entries[wallet.pk] = []
        for month, amount in funding[team.team_id]:
            at, transfer_id = (
                datetime.combine(month, time.min, tzinfo=organization.tz),
                new_transfer_id(),
            )
            common = {
                "kind": LedgerEntry.Kind.ALLOCATION,
                "description": f"Demo funding for {month:%B %Y}",
                "transfer_id": transfer_id,
                "actor": "demo_seed",
                "created_at": at,
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


# --- simulation ---------------------------------------------------------------------------------


def _day_weights(month: date) -> list[tuple[date, float]]:
    """Weekdays busy, weekends quiet, and usage growing through the month."""
    days = []
    day = month
    while day <= month_end(month):
        weekend = day.weekday() >= 5
        days.append((day, (0.25 if weekend else 1.0) * (1 + 0.015 * (day.day - 1))))
        day += timedelta(days=1)
    return days


def _moment(rng: random.Random, organization: Organization, day: date) -> datetime:
    hour = min(22.9, max(6.0, rng.gauss(13.5, 3.0)))
    seconds = int(hour * 3600) + rng.randrange(60)
    return datetime.combine(day, time.min, tzinfo=organization.tz) + timedelta(seconds=seconds)


def _fingerprint(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _round_down(tokens: float, unit: int) -> int:
    return int(tokens // unit) * unit


def _usage(spec: dict, scale: float, units: dict) -> Usage:
    """Scaled token counts, each a multiple of its price unit, so the cost is whole micro-dollars."""
    cached = _round_down(spec["prompt"] * spec["cached_share"] * scale, units["cached"][0])
    plain = _round_down(spec["prompt"] * (1 - spec["cached_share"]) * scale, units["input"][0])
    completion = _round_down(spec["completion"] * scale, units["output"][0])
    return Usage(prompt_tokens=plain + cached, completion_tokens=completion, cached_tokens=cached)


def _raw_cost(spec: dict, price: Price) -> float:
    cached_rate = price.cached_input_per_mtok
    cached_rate = float(cached_rate if cached_rate is not None else price.input_per_mtok)
    return (
        spec["prompt"] * (1 - spec["cached_share"]) * float(price.input_per_mtok)
        + spec["prompt"] * spec["cached_share"] * cached_rate
        + spec["completion"] * float(price.output_per_mtok)
    ) / MICRO


def _balancing_usage(rest: Decimal, price: Price) -> Usage | None:
    """Tokens whose cost at `price` is exactly `rest` (whole micro-dollars), about a fifth of it
    on output; None when this price's units cannot make that amount."""
    target = int(rest * MICRO)
    units = price_units(price)
    (m_in, k_in), (m_out, k_out) = units["input"], units["output"]
    if k_in == 0:
        return None
    start = int(target * 0.2) // k_out if k_out else 0
    for y in range(start, start + k_in):
        left = target - y * k_out
        if left >= 0 and left % k_in == 0:
            usage = Usage(prompt_tokens=(left // k_in) * m_in, completion_tokens=y * m_out)
            if cost_of(price, usage) == rest:
                return usage
        if not k_out:
            break
    return None


def _team_events(
    *, rng, organization, team: Team, month: date, prices: PriceBook, dept, group, wallet
):
    """The team's events for one month, adding up to its target exactly."""
    target = team.targets[month]
    count = team.requests if month == MAY else int(team.requests * 0.4)
    days = _day_weights(month)
    names = [f"{rng.choice(FIRST)}.{rng.choice(LAST)}" for _ in range(team.users)]
    users = list(dict.fromkeys(names))
    user_weights = [1 / (i + 1) ** 0.9 for i in range(len(users))]
    models = list(team.mix)
    seen = []  # (fingerprint, model, prompt tokens) of prompts asked so far
    specs = []
    day_list, day_weights = [d for d, _ in days], [w for _, w in days]
    # In time order, so that a repeated prompt follows its first ask (as a cache would see it).
    moments = sorted(
        _moment(rng, organization, day) for day in rng.choices(day_list, day_weights, k=count)
    )
    for i, at in enumerate(moments):
        profile_model = rng.choices(models, weights=[team.mix[m] for m in models])[0]
        spec = {
            "at": at,
            "user": rng.choices(users, weights=user_weights)[0],
            "app": rng.choice(team.apps),
            "status": "ok",
            "rid": f"{rng.getrandbits(96):024x}",
        }
        if seen and rng.random() < team.repeat_share:
            fingerprint, model, prompt = rng.choice(seen[-300:])
            spec.update(model=model, prompt=prompt, fingerprint=fingerprint)
        else:
            model = profile_model
            profile = MODELS[model]
            prompt = max(50, int(rng.lognormvariate(math.log(profile.prompt), 0.5)))
            fingerprint = _fingerprint(team.team_id, month, i)
            spec.update(model=model, prompt=prompt, fingerprint=fingerprint)
            if rng.random() < 0.006:
                spec["status"] = rng.choice(["provider_error", "timeout", "rate_limited"])
            else:
                seen.append((fingerprint, model, prompt))
        profile = MODELS[spec["model"]]
        spec["completion"] = (
            int(rng.lognormvariate(math.log(profile.completion), 0.4)) if profile.completion else 0
        )
        spec["cached_share"] = profile.cached_share * rng.random() * 2
        specs.append(spec)

    billable = [s for s in specs if s["status"] == "ok"]
    raw = sum(_raw_cost(s, prices.at(s["model"], s["at"])) for s in billable)
    scale = float(target - BALANCE_GAP) / raw
    events = []
    total = Decimal(0)
    for spec in specs:
        price = prices.at(spec["model"], spec["at"])
        if spec["status"] == "ok":
            usage = _usage(spec, scale, prices.units(spec["model"], spec["at"]))
            cost = cost_of(price, usage)
        else:
            usage, cost = Usage(), Decimal(0)
        total += cost
        events.append(_event(organization, team, dept, group, wallet, spec, price, usage, cost))

    rest = target - total
    last_day = max(d for d, _ in days if d.weekday() < 5)
    at = _moment(rng, organization, last_day)
    for model in [*models, *MODELS]:
        price = prices.at(model, at)
        usage = _balancing_usage(rest, price)
        if usage is not None:
            break
    else:  # pragma: no cover - every catalog we know has a $1 or $0.02 per million price
        raise RuntimeError(f"cannot price a balancing event of {rest} for {team.team_id}")
    spec = {"at": at, "user": users[0], "app": team.apps[0], "status": "ok", "model": model}
    spec["rid"] = f"{rng.getrandbits(96):024x}"
    spec["fingerprint"] = _fingerprint(team.team_id, month, "last")
    events.append(_event(organization, team, dept, group, wallet, spec, price, usage, rest))
    return events


ERRORS = {
    "provider_error": (UsageEvent.Status.PROVIDER_ERROR, 500, "server_error"),
    "timeout": (UsageEvent.Status.TIMEOUT, 504, "timeout"),
    "rate_limited": (UsageEvent.Status.PROVIDER_ERROR, 429, "rate_limit_exceeded"),
}


def _event(organization, team, dept, group, wallet, spec, price, usage, cost) -> UsageEvent:
    profile = MODELS[spec["model"]]
    status, http_status, error_code = ERRORS.get(spec["status"], ("ok", 200, ""))
    tokens = usage.prompt_tokens + usage.completion_tokens
    latency = 300 + tokens // 40 if status == "ok" else 30_000 if http_status == 504 else 900
    return UsageEvent(
        organization=organization,
        department=dept,
        consumer_group=group,
        wallet=wallet,
        request_id=f"req_demo_{spec['rid']}",
        user=spec["user"],
        tags={"app": spec["app"], "env": "prod"},
        endpoint=profile.endpoint,
        provider=profile.provider,
        target_id=profile.provider,
        model_requested=spec["model"],
        model_served=spec["model"] if status == "ok" else "",
        stream=profile.endpoint != "/v1/embeddings" and int(spec["fingerprint"][:4], 16) % 3 == 0,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        cost=cost,
        currency=organization.currency,
        price=price,
        usage_source=UsageEvent.UsageSource.PROVIDER
        if status == "ok"
        else UsageEvent.UsageSource.NONE,
        status=status,
        http_status=http_status,
        error_code=error_code,
        latency_ms=latency,
        prompt_fingerprint=spec["fingerprint"],
        created_at=spec["at"],
    )


AUDITED = {
    LedgerEntry.Kind.ALLOCATION: "wallet.allocation",
    LedgerEntry.Kind.CREDIT: "wallet.credit",
}


def _ledger(events: list[UsageEvent], wallets: dict, allocations: dict) -> None:
    """The allocations and one capture entry per charged event on its team wallet, in time
    order, through the ledger's rule (wallets/ledger.py): running balances, balance = the sum of
    the entries."""
    by_wallet = defaultdict(list)
    for wallet_pk, entries in allocations.items():
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


def demo_seed(*, organization_slug: str = ORG_SLUG, seed: int = 2026) -> dict:
    """Create the demo organization's teams, wallets, budgets and April-May 2026 of usage.

    Idempotent: if the organization already has May 2026 events nothing is added. Every event
    has one capture on its team wallet equal to its cost, and each wallet's balance moves by
    exactly the captured total, in one transaction.
    """
    organization, _ = Organization.objects.get_or_create(
        slug=organization_slug, defaults={"name": ORG_NAME}
    )
    start, end = day_range(organization, MAY, month_end(MAY))
    if UsageEvent.objects.filter(
        organization=organization, created_at__gte=start, created_at__lt=end
    ).exists():
        return {"organization": organization, "created": 0, "skipped": True}

    rng = random.Random(seed)
    with transaction.atomic():
        departments = _ensure_tenancy(organization)
        wallets, allocations = _fund(organization, departments)
        prices = PriceBook(organization)
        events = []
        for team in TEAMS:
            dept = departments[team.team_id]
            group = ConsumerGroup.objects.filter(organization=organization, department=dept).first()
            for month in (APRIL, MAY):
                events += _team_events(
                    rng=rng,
                    organization=organization,
                    team=team,
                    month=month,
                    prices=prices,
                    dept=dept,
                    group=group,
                    wallet=wallets[team.team_id],
                )
        UsageEvent.objects.bulk_create(events, batch_size=BATCH)
        _ledger(events, wallets, allocations)
    return {"organization": organization, "created": len(events), "skipped": False}
