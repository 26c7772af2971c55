"""Two tenants with one row of every admin-registered model each, and staff of every role.

Every text of the outsider's rows carries the word "outsider", and nothing of Acme's does, so a
page shown to Acme's staff must never contain it.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from alert_channels.models import AlertChannel, ChannelDelivery
from budgets.models import Budget, BudgetAlert, WalletAlert
from chargeback.models import AuditLog, Membership
from chargeback.provider_secrets import provider_secret_set
from gateway.models import ExchangeRate, UsageEvent
from gateway.response_cache.services import cache_policy_set
from reports.models import ExportJob, ProviderInvoice
from sso.models import SsoConnection, SsoIdentity
from tests.factories import (
    AdminTokenFactory,
    ConsumerGroupFactory,
    DepartmentFactory,
    OrganizationFactory,
    PriceFactory,
    ProviderTargetFactory,
)
from wallets import services
from wallets.tickets.policy import ticket_policy_set
from wallets.tickets.services import ticket_open

PASSWORD = "a-long-test-password-1"


@dataclass
class Tenant:
    org: object
    marker: str
    owned: object  # the department its budget owner owns
    other: object  # a department the budget owner does not own
    users: dict = field(default_factory=dict)


def make_staff(org, role, username, departments=()):
    user = get_user_model().objects.create_user(
        username=username, email=f"{username}@example.com", password=PASSWORD
    )
    membership = Membership.objects.create(user=user, organization=org, role=role)
    if departments:
        membership.departments.set(departments)
    return user


def make_event(org, department, *, marker, cost, created_at=None, **extra):
    group = department.consumer_groups.first()
    fields = {
        "organization": org,
        "department": department,
        "consumer_group": group,
        "request_id": f"req-{marker}-{UsageEvent.objects.count()}-{department.pk}",
        "user": f"{marker}-user",
        "endpoint": "chat.completions",
        "provider": "fake",
        "model_requested": f"{marker}-model",
        "model_served": f"{marker}-model",
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "cost": Decimal(cost),
        "created_at": created_at or timezone.now(),
    }
    fields.update(extra)
    return UsageEvent.objects.create(**fields)


def build_tenant(marker: str) -> Tenant:
    """One row of every model in chargeback/, wallets/, gateway/ and reports/ for a new tenant."""
    org = OrganizationFactory(name=marker.title(), slug=marker)
    owned = DepartmentFactory(organization=org, team_id=f"team_{marker}_eng", name=f"{marker} eng")
    other = DepartmentFactory(organization=org, team_id=f"team_{marker}_ops", name=f"{marker} ops")
    for dept in (owned, other):
        ConsumerGroupFactory(
            organization=org,
            department=dept,
            name=f"{marker}-{dept.name.split()[-1]}",
            key=f"kt_cg_{marker}_{dept.pk}",
        )
        services.wallet_allocate(
            department=dept,
            amount=Decimal("1000"),
            currency="USD",
            description=f"{marker} funding",
            actor=f"{marker}_admin",
            via="api",
        )
        Budget.objects.create(
            organization=org,
            department=dept,
            amount=Decimal("500"),
            thresholds=[50, 80, 100],
            owner_emails=[f"lead@{marker}.example"],
        )
    services.wallet_credit(
        organization=org,
        amount=Decimal("5000"),
        currency="USD",
        description=f"{marker} credit",
        actor=f"{marker}_admin",
    )
    ticket_policy_set(  # the owned department's group waits (wallets/tickets/policy.py)
        organization=org,
        consumer_group=owned.consumer_groups.first(),
        mode="wait",
        wait_seconds=60,
        actor=f"{marker}_admin",
        via="config",
    )
    for dept in (owned, other):  # a pending cost ticket each (wallets/tickets)
        ticket_open(
            wallet=services.wallet_for_team(department=dept),
            department_id=dept.pk,
            consumer_group_id=None,
            user_ref=f"{marker}-user",
            model="gpt-4o",
            estimate=Decimal("3.50"),
            request_id=f"req_{marker}_{dept.pk}_ticket",
        )
    wallet = owned.wallets.get()
    services.hold_place(wallet=wallet, amount=Decimal("1.5"), request_id=f"{marker}-hold-1")
    secret, _ = provider_secret_set(
        organization=org,
        name=f"{marker}-secret",
        value=f"sk-{marker}-0123456789abcdefghij",
        actor=f"{marker}_admin",
        via="api",
    )
    ProviderTargetFactory(
        organization=org, target_id=f"{marker}-target", provider="fake", secret=secret
    )
    AdminTokenFactory(organization=org, name=f"{marker} token", raw=f"kt_admin_{marker}_tok")
    connection = SsoConnection.objects.create(
        organization=org,
        issuer=f"https://login.{marker}.example",
        client_id=f"{marker}-portal",
        client_secret=secret,
        display_name=f"{marker} idp",
        department_map={f"{marker}-leads": [owned.team_id]},
    )
    SsoIdentity.objects.create(
        organization=org,
        issuer=connection.issuer,
        subject=f"{marker}-sub",
        user=get_user_model().objects.create_user(username=f"{marker}_sso"),
        groups=[f"{marker}-leads"],
    )
    cache_policy_set(organization=org, enabled=True, ttl_seconds=600, actor="x", via="config")
    cache_policy_set(
        organization=org,
        consumer_group=owned.consumer_groups.get(),
        excluded_models=[f"{marker}-model"],
        actor=f"{marker}_admin",
        via="config",
    )
    price = PriceFactory(organization=org, provider="fake", model=f"{marker}-model")
    ExchangeRate.objects.create(
        organization=org,
        from_currency="USD",
        to_currency="EUR",
        rate=Decimal("0.9"),
        effective_from=timezone.now() - timedelta(days=30),
    )
    for dept in (owned, other):
        make_event(org, dept, marker=marker, cost="0.25", price=price)
    BudgetAlert.objects.create(
        organization=org,
        budget=owned.budgets.get(),
        period_start=date.today().replace(day=1),
        kind=BudgetAlert.Kind.THRESHOLD,
        threshold=50,
    )
    WalletAlert.objects.create(organization=org, wallet=wallet, state=WalletAlert.State.LOW)
    ProviderInvoice.objects.create(
        organization=org,
        provider=f"{marker}cloud",
        period=date(2026, 5, 1),
        amount=Decimal("10"),
        reference=f"{marker}-inv-1",
    )
    ExportJob.objects.create(
        organization=org,
        type=ExportJob.Type.EVENTS,
        format=ExportJob.Format.CSV,
        date_from=date(2026, 5, 1),
        date_to=date(2026, 5, 31),
        requested_by=f"{marker}_admin",
    )
    channel = AlertChannel.objects.create(
        organization=org,
        name=f"{marker}-hook",
        kind=AlertChannel.Kind.WEBHOOK,
        url=f"https://hooks.{marker}.example/kt",
        department=owned,
    )
    event_id = "6f1c2a4e-0000-4000-8000-00000000000" + ("1" if marker == "acme" else "2")
    ChannelDelivery.objects.create(
        organization=org,
        channel=channel,
        event_key=f"test:{marker}",
        event_id=event_id,
        event_type="test",
        body={
            "id": event_id,
            "type": "test",
            "time": "2026-05-01T00:00:00Z",
            "data": {"subject": f"{marker} test"},
        },
        status=ChannelDelivery.Status.FAILED,
        attempts=2,
        response_code=500,
        last_error=f"HTTP 500: {marker} receiver down",
    )
    tenant = Tenant(org=org, marker=marker, owned=owned, other=other)
    tenant.users = {
        "owner": make_staff(org, Membership.Role.OWNER, f"{marker}_owner"),
        "finance": make_staff(org, Membership.Role.FINANCE, f"{marker}_finance"),
        "budget_owner": make_staff(
            org, Membership.Role.BUDGET_OWNER, f"{marker}_budget", departments=[owned]
        ),
        "viewer": make_staff(org, Membership.Role.VIEWER, f"{marker}_viewer"),
    }
    assert AuditLog.objects.filter(organization=org).exists()
    return tenant


@pytest.fixture(scope="package")
def tenants(django_db_setup, django_db_blocker):
    """Built once for tests/admin and committed; each test still runs in its own transaction
    (rolled back), and everything is flushed when the package is done, before other areas'
    tests (which create their own "acme") run."""
    with django_db_blocker.unblock():
        built = {"acme": build_tenant("acme"), "outsider": build_tenant("outsider")}
    yield built
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def acme(tenants, db):
    return tenants["acme"]


@pytest.fixture
def outsider(tenants, db):
    return tenants["outsider"]


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser(
        username="root", email="root@example.com", password=PASSWORD
    )


@pytest.fixture
def login(client):
    def as_user(user):
        client.force_login(user)
        return client

    return as_user


def yesterday():
    return timezone.now() - timedelta(days=1)


@pytest.fixture(scope="session", autouse=True)
def _fast_passwords():
    from django.conf import settings

    # Hashing a password properly takes ~0.3 s; tests create a dozen users.
    original = settings.PASSWORD_HASHERS
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield
    settings.PASSWORD_HASHERS = original
