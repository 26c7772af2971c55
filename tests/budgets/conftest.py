import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from budgets import services as budget_services
from tests.budgets.helpers import record_spend
from tests.factories import DepartmentFactory
from tests.ports import free_port
from wallets import services as wallet_services


@pytest.fixture(autouse=True)
def eager_celery(settings):
    """Tasks run in-process here (the worker test runs a real worker and turns this off with
    `eager_celery.CELERY_TASK_ALWAYS_EAGER = False`; see tests/conftest.py for why settings)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True
    return settings


# The second day of a month, at noon UTC: fewer than KT_BUDGET_FORECAST_MIN_DAYS have elapsed,
# so the hourly run sends no forecast alert unless a test travels to a later day on purpose.
PINNED_NOW = datetime(2026, 5, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def pinned_clock(request):
    """Budget outcomes depend on the date (the period, the forecast); every test here runs at
    PINNED_NOW (ticking) unless it travels itself. A real worker process keeps the real clock,
    so tests that start one keep it too."""
    if request.node.get_closest_marker("celery_worker"):
        yield None
        return
    with time_machine.travel(PINNED_NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def check_every_request(settings):
    """Most tests follow one request at a time; test_throttle covers the window."""
    settings.KT_BUDGET_CHECK_SECONDS = 0


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
def outsider_support(outsider_org):
    """The outsider's own Support: same team_id, name and wallet, another owner. Nothing it
    spends may count for `org`, and nothing `org` spends for it."""
    department = DepartmentFactory(
        organization=outsider_org,
        team_id="team_support",
        name="Support",
        owner_emails=["lead@support.outsider.example"],
    )
    wallet_services.wallet_allocate(
        department=department, amount=Decimal("5000.00"), currency="USD"
    )
    return department


@pytest.fixture
def outsider_budget(outsider_support):
    """The outsider's $1,000 a month for its Support, thresholds 50/80/100."""
    return budget_services.budget_create(
        organization=outsider_support.organization,
        team_id="team_support",
        amount=Decimal("1000.00"),
        owner_emails=["lead@outsider.example"],
    )


def mail_to(address: str) -> list:
    """The messages in Django's test outbox addressed to `address`."""
    from django.core import mail

    return [m for m in mail.outbox if address in m.to]


@pytest.fixture
def spend(django_capture_on_commit_callbacks):
    """record_spend with the on-commit hook run (the test itself is inside a transaction)."""

    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return record_spend(**kwargs)

    return run


@pytest.fixture
def run_hourly(django_capture_on_commit_callbacks):
    """The beat task's service, with its on-commit sends run."""
    from budgets import evaluation

    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return evaluation.budgets_evaluate_all(**kwargs)

    return run


class SMTPRecorder:
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

    def __init__(self, port: int, delay: float = 0.0):
        from aiosmtpd.controller import Controller

        self.port = port
        self.delay = delay
        self.messages: list = []
        self.receiving = threading.Event()  # set as soon as a message's DATA arrives
        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server, session, envelope):
        import asyncio
        import email
        from email import policy

        self.receiving.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.messages.append(
            (envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 Message accepted for delivery"

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()


@pytest.fixture
def smtp_settings(settings):
    """Point Django at a loopback SMTP port (nothing listens there until a test starts one)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    return settings
