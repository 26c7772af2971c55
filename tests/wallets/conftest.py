from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests.factories import DepartmentFactory
from wallets import services
from wallets.models import LedgerEntry


@pytest.fixture
def support(org):
    return DepartmentFactory(organization=org, team_id="team_support", name="Support")


@pytest.fixture
def outsider_team(outsider_org):
    """The outsider has its own team_engineering and a team_outsider, both funded: neither may
    ever be visible to `org`'s token."""
    for team_id in ("team_engineering", "team_outsider"):
        department = DepartmentFactory(organization=outsider_org, team_id=team_id)
        services.wallet_allocate(
            department=department, amount=Decimal("500.00"), currency="USD", description="theirs"
        )
    return department


@pytest.fixture
def client():
    return APIClient()


def ledger_count() -> int:
    return LedgerEntry.objects.count()
