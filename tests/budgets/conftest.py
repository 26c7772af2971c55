from decimal import Decimal

import pytest

from chargeback.celery import app as celery_app
from tests.budgets.helpers import record_spend
from tests.factories import DepartmentFactory
from wallets import services as wallet_services
from wallets.budgets import services as budget_services


@pytest.fixture(autouse=True)
def eager_celery():
    """Tasks run in-process here (the worker test runs a real worker and turns this off)."""
    conf = celery_app.conf
    saved = conf.task_always_eager, conf.task_eager_propagates
    conf.task_always_eager, conf.task_eager_propagates = True, True
    yield conf
    conf.task_always_eager, conf.task_eager_propagates = saved


@pytest.fixture
def support(org):
    return DepartmentFactory(
        organization=org,
        team_id="team_support",
        name="Support",
        owner_emails=["lead@support.example"],
    )


@pytest.fixture
def support_wallet(support):
    wallet_services.wallet_allocate(department=support, amount=Decimal("5000.00"), currency="USD")
    return wallet_services.wallet_for_team(department=support)


@pytest.fixture
def budget(support, support_wallet):
    """$1,000 a month for Support, thresholds 50/80/100, owner lead@example.com."""
    return budget_services.budget_create(
        organization=support.organization,
        team_id="team_support",
        amount=Decimal("1000.00"),
        owner_emails=["lead@example.com"],
    )


@pytest.fixture
def spend(django_capture_on_commit_callbacks):
    """record_spend with the on-commit hook run (the test itself is inside a transaction)."""

    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return record_spend(**kwargs)

    return run
