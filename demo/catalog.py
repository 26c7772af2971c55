"""What the demo simulates: the models departments call (with their typical requests), the
teams of Acme Corp with their April and May 2026 targets, mixes, apps, users and repeat rates,
and the prices each simulated call is charged at (the shipped catalog, with fallbacks)."""

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from chargeback.models import Organization
from gateway.models import Price
from gateway.pricing import price_for

MICRO = 1_000_000
MAY = date(2026, 5, 1)
APRIL = date(2026, 4, 1)


@dataclass(frozen=True)
class ModelProfile:
    provider: str
    prompt: int  # typical prompt tokens of one request
    completion: int
    cached_share: float  # share of prompt tokens served from the provider's prompt cache
    endpoint: str


MODELS = {
    "gpt-4o": ModelProfile("openai", 3000, 600, 0.2, "/v1/chat/completions"),
    "gpt-4o-mini": ModelProfile("openai", 2500, 450, 0.2, "/v1/chat/completions"),
    "gpt-4.1": ModelProfile("openai", 6000, 900, 0.3, "/v1/chat/completions"),
    "o3": ModelProfile("openai", 5000, 3000, 0.1, "/v1/chat/completions"),
    "claude-sonnet-4-5": ModelProfile("anthropic", 8000, 1200, 0.3, "/v1/messages"),
    "claude-haiku-4-5": ModelProfile("anthropic", 3000, 500, 0.2, "/v1/messages"),
    "text-embedding-3-small": ModelProfile("openai", 1500, 0, 0.0, "/v1/embeddings"),
}

# Used only when the default catalog has no price for a model: (input, output, cached input,
# cache write, premium, kind), USD per million tokens.
FALLBACK_PRICES = {
    "gpt-4o": ("2.50", "10.00", "1.25", None, False, "chat"),
    "gpt-4o-mini": ("0.15", "0.60", "0.075", None, False, "chat"),
    "gpt-4.1": ("2.00", "8.00", "0.50", None, True, "chat"),
    "o3": ("2.00", "8.00", "0.50", None, True, "chat"),
    "claude-sonnet-4-5": ("3.00", "15.00", "0.30", "3.75", True, "chat"),
    "claude-haiku-4-5": ("1.00", "5.00", "0.10", "1.25", False, "chat"),
    "text-embedding-3-small": ("0.02", "0", None, None, False, "embedding"),
}


@dataclass(frozen=True)
class Team:
    team_id: str
    name: str
    group: str
    targets: dict  # month start -> exact spend
    budget: Decimal
    mix: dict  # model -> share of requests
    requests: int  # May requests; April (history for the trend) has 40 % of them
    apps: tuple
    users: int
    repeat_share: float  # share of requests that repeat an earlier prompt exactly


def _team(team_id, name, group, april, may, budget, mix, requests, apps, users, repeats):
    return Team(
        team_id,
        name,
        group,
        {APRIL: Decimal(april), MAY: Decimal(may)},
        Decimal(budget),
        mix,
        requests,
        apps,
        users,
        repeats,
    )


TEAMS = [
    _team(
        "team_engineering",
        "Engineering",
        "engineering",
        "24800.00",
        "28000.00",
        "30000.00",
        {
            "claude-sonnet-4-5": 35,
            "gpt-4.1": 20,
            "o3": 12,
            "gpt-4o": 13,
            "gpt-4o-mini": 15,
            "claude-haiku-4-5": 5,
        },
        3200,
        ("code-review", "ci-assistant", "dev-chat"),
        40,
        0.06,
    ),
    _team(
        "team_support",
        "Support",
        "support",
        "11100.00",
        "12000.00",
        "12000.00",
        {"gpt-4o-mini": 57, "claude-haiku-4-5": 20, "gpt-4o": 20, "claude-sonnet-4-5": 3},
        2600,
        ("helpdesk-bot", "ticket-summary"),
        25,
        0.30,
    ),
    _team(
        "team_legal",
        "Legal",
        "legal",
        "2750.00",
        "3000.00",
        "4000.00",
        {"claude-sonnet-4-5": 60, "o3": 15, "gpt-4.1": 15, "claude-haiku-4-5": 10},
        250,
        ("contract-review",),
        6,
        0.03,
    ),
    _team(
        "team_shared_ops",
        "Shared internal operations",
        "shared-ops",
        "6350.00",
        "7000.00",
        "8000.00",
        {
            "gpt-4o": 35,
            "gpt-4o-mini": 30,
            "text-embedding-3-small": 20,
            "claude-haiku-4-5": 10,
            "claude-sonnet-4-5": 5,
        },
        1300,
        ("kb-assistant", "search-index"),
        12,
        0.15,
    ),
    _team(
        "team_marketing",
        "Marketing",
        "marketing",
        "3300.00",
        "4000.00",
        "4500.00",
        {"gpt-4o": 40, "gpt-4o-mini": 30, "claude-sonnet-4-5": 20, "claude-haiku-4-5": 10},
        450,
        ("campaign-writer",),
        10,
        0.08,
    ),
    _team(
        "team_sales",
        "Sales",
        "sales",
        "3100.00",
        "3500.00",
        "3000.00",
        {"gpt-4o-mini": 40, "gpt-4o": 30, "claude-haiku-4-5": 20, "claude-sonnet-4-5": 10},
        450,
        ("crm-notes", "proposal-drafts"),
        14,
        0.10,
    ),
    _team(
        "team_data",
        "Data",
        "data",
        "2450.00",
        "3000.00",
        "3500.00",
        {"gpt-4.1": 30, "o3": 15, "gpt-4o-mini": 30, "text-embedding-3-small": 25},
        320,
        ("sql-copilot", "etl-enrichment"),
        8,
        0.05,
    ),
    _team(
        "team_hr",
        "People (HR)",
        "hr",
        "1300.00",
        "1500.00",
        "2000.00",
        {"gpt-4o-mini": 50, "claude-haiku-4-5": 30, "gpt-4o": 20},
        250,
        ("policy-helper",),
        5,
        0.12,
    ),
]

FIRST = ["ana", "ben", "chen", "dana", "eli", "fatima", "gus", "hana", "ivan", "jo", "kofi",
         "lena", "marco", "nina", "omar", "priya", "quinn", "rosa", "sam", "tara", "uma",
         "victor", "wen", "yusuf", "zoe"]  # fmt: skip
LAST = ["garcia", "smith", "ito", "khan", "novak", "okafor", "berg", "silva", "park", "moreau"]


# --- prices -------------------------------------------------------------------------------------


def _unit(price_per_mtok: Decimal) -> tuple[int, int]:
    """(tokens, micro-dollars): the fewest tokens that cost a whole number of micro-dollars."""
    p = int(price_per_mtok * MICRO)
    if p == 0:
        return 1, 0
    g = math.gcd(p, MICRO)
    return MICRO // g, p // g


def price_units(price: Price) -> dict:
    cached = price.cached_input_per_mtok
    return {
        "input": _unit(price.input_per_mtok),
        "cached": _unit(cached if cached is not None else price.input_per_mtok),
        "output": _unit(price.output_per_mtok),
    }


class PriceBook:
    """Prices in force per (model, day), from the catalog; missing ones are added to it."""

    def __init__(self, organization: Organization):
        self.organization = organization
        self._cache = {}

    def at(self, model: str, moment: datetime) -> Price:
        key = (model, moment.date())
        if key not in self._cache:
            provider = MODELS[model].provider
            price = price_for(
                organization_id=self.organization.id, provider=provider, model=model, at=moment
            )
            if price is None:
                price = _fallback_price(provider, model)
            self._cache[key] = (price, price_units(price))
        return self._cache[key][0]

    def units(self, model: str, moment: datetime) -> dict:
        self.at(model, moment)
        return self._cache[(model, moment.date())][1]


def _fallback_price(provider: str, model: str) -> Price:
    inp, out, cached, write, premium, kind = FALLBACK_PRICES[model]
    price, _ = Price.objects.get_or_create(
        organization=None,
        provider=provider,
        model=model,
        effective_from=datetime(2024, 1, 1, tzinfo=UTC),
        defaults={
            "kind": kind,
            "input_per_mtok": Decimal(inp),
            "output_per_mtok": Decimal(out),
            "cached_input_per_mtok": Decimal(cached) if cached else None,
            "cache_write_per_mtok": Decimal(write) if write else None,
            "premium": premium,
            "max_output_tokens": 16384,
        },
    )
    return price
