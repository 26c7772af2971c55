"""A small, hand-checkable month for the dashboard tests: two departments of `org`, one of the
outsider, two prices (one premium), and events whose costs come from `cost_of`."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from budgets.models import Budget
from chargeback.models import Membership
from gateway.models import UsageEvent
from gateway.pricing import Usage, cost_of
from tests.factories import DepartmentFactory, PriceFactory


@pytest.fixture
def prices():
    return {
        "big": PriceFactory(
            model="big-model",
            input_per_mtok=Decimal("3"),
            output_per_mtok=Decimal("15"),
            premium=True,
        ),
        "small": PriceFactory(
            model="small-model", input_per_mtok=Decimal("0.5"), output_per_mtok=Decimal("1.5")
        ),
    }


class Events:
    """Writes events priced by cost_of; remembers nothing but a counter for request ids."""

    def __init__(self, prices):
        self.prices = prices
        self.n = 0

    def add(self, dept, *, day, price="small", prompt=1000, completion=100, user="ana",
            fingerprint="", status="ok", month=5, hour=12):  # fmt: skip
        self.n += 1
        price_row = self.prices[price]
        cost = (
            cost_of(price_row, Usage(prompt_tokens=prompt, completion_tokens=completion))
            if status == "ok"
            else Decimal(0)
        )
        return UsageEvent.objects.create(
            organization=dept.organization,
            department=dept,
            request_id=f"req_test_{self.n}",
            user=user,
            endpoint="/v1/chat/completions",
            provider=price_row.provider,
            model_requested=price_row.model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=cost,
            price=price_row,
            status=status,
            prompt_fingerprint=fingerprint,
            created_at=datetime(2026, month, day, hour, 0, tzinfo=UTC),
        )


@pytest.fixture
def events(prices):
    return Events(prices)


@pytest.fixture
def support(org):
    return DepartmentFactory(organization=org, team_id="team_support", name="Support")


@pytest.fixture
def secret_dept(outsider_org):
    return DepartmentFactory(organization=outsider_org, team_id="team_secret", name="Secret Lab")


@pytest.fixture
def month(org, engineering, support, secret_dept, events):
    """May 2026 (and a bit of April) for org, plus spend of the outsider that must never show."""
    Budget.objects.create(organization=org, department=support, amount=Decimal("100"))
    Budget.objects.create(organization=org, department=engineering, amount=Decimal("50"))
    for day in (1, 2, 3, 4, 5):
        events.add(engineering, day=day, price="big", prompt=400_000, completion=20_000, user="bo")
        events.add(engineering, day=day, prompt=70_000, completion=3_333, user="cy")
    events.add(engineering, day=9, status="provider_error")
    for day, fingerprint in [(1, "A"), (2, "B"), (3, "A"), (4, "C"), (5, "A"), (6, "C")]:
        events.add(support, day=day, prompt=300_001 + day, completion=999, fingerprint=fingerprint)
    events.add(engineering, day=20, month=4, price="big", prompt=100_000)
    events.add(secret_dept, day=3, price="big", prompt=5_000_000, user="mallory")
    return {"engineering": engineering, "support": support}


def _user(name, org, role=Membership.Role.FINANCE, departments=()):
    user = User.objects.create_user(name, password="pw-not-used-for-login")
    membership = Membership.objects.create(user=user, organization=org, role=role)
    membership.departments.set(departments)
    return user


@pytest.fixture
def member(org):
    return _user("fin", org)


@pytest.fixture
def outsider_member(outsider_org):
    return _user("mallory", outsider_org)


@pytest.fixture
def make_user():
    return _user
