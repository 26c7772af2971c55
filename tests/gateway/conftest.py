"""Gateway tests: the fake provider as a real HTTP server on loopback, the gateway under
pytest-django's live server, the real `openai` and `anthropic` SDKs as clients."""

from dataclasses import dataclass
from decimal import Decimal

import anthropic
import openai
import pytest

from chargeback.models import ConsumerGroup, Department, Organization, ProviderTarget
from gateway import providers
from gateway.fake_provider import start_in_thread
from gateway.models import Price
from tests.factories import (
    ConsumerGroupFactory,
    DepartmentFactory,
    OrganizationFactory,
    PriceFactory,
    ProviderTargetFactory,
)
from wallets import services
from wallets.models import Wallet

KEY = "kt_cg_engineering_prod"
OUTSIDER_KEY = "kt_cg_outsider_prod"


@pytest.fixture(scope="session")
def fake_provider_server():
    """The fake provider on 127.0.0.1, which the gateway refuses by default (a loopback
    address): the tests allow exactly its host:port, as an operator would (chargeback/upstream.py).
    `server.calls` counts the requests it received, by path."""
    from django.conf import settings

    server, base_url = start_in_thread()
    server.base_url = base_url
    saved = settings.KT_UPSTREAM_ALLOW_HOSTS
    settings.KT_UPSTREAM_ALLOW_HOSTS = [*saved, base_url.split("://", 1)[1]]
    yield server
    settings.KT_UPSTREAM_ALLOW_HOSTS = saved
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def fake_provider(fake_provider_server):
    return fake_provider_server.base_url


@dataclass
class FakePair:
    """Two fake providers of the tests' own, for failover: `primary` and `backup` servers and
    their base URLs (their hosts allowed like the shared one's)."""

    primary: object
    primary_url: str
    backup: object
    backup_url: str

    def reset_counts(self) -> None:
        for server in (self.primary, self.backup):
            with server.lock:
                server.posts = 0


@pytest.fixture(scope="session")
def fake_pair_servers():
    primary, primary_url = start_in_thread()
    backup, backup_url = start_in_thread()
    yield FakePair(primary, primary_url, backup, backup_url)
    for server in (primary, backup):
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_pair(fake_pair_servers, fake_provider, settings):
    """The pair, their hosts allowed for this test only (like the shared one's, for the session)."""
    pair = fake_pair_servers
    hosts = [url.split("://", 1)[1] for url in (pair.primary_url, pair.backup_url)]
    settings.KT_UPSTREAM_ALLOW_HOSTS = [*settings.KT_UPSTREAM_ALLOW_HOSTS, *hosts]
    return pair


@pytest.fixture(autouse=True)
def _offline_notice_reset():
    """Every test starts cold (tests/conftest.py clears the gateway caches)."""
    providers._offline_logged.clear()


@dataclass
class Setup:
    org: Organization
    department: Department
    group: ConsumerGroup
    target: ProviderTarget
    chat: Price
    embed: Price
    wallet: Wallet
    outsider_org: Organization
    outsider_wallet: Wallet

    def refresh(self) -> Wallet:
        self.wallet.refresh_from_db()
        return self.wallet


def allow_test_env_refs(org: Organization) -> None:
    """The operator allows the organization the tests' own variables (`KT_TEST_*`) as provider
    keys (chargeback/env_refs.py); without it the gateway refuses to read them."""
    org.env_refs_allowed = ["KT_TEST_*"]
    org.save(update_fields=["env_refs_allowed"])


def fund(department: Department, amount: str) -> Wallet:
    services.wallet_allocate(department=department, amount=Decimal(amount), currency="USD")
    return services.wallet_for_team(department=department)


def make_setup(fake_provider) -> Setup:
    """An organization with the seed's engineering group, a funded team wallet, the fake
    provider as its target, chat and embedding prices; and an outsider organization."""
    org = OrganizationFactory(name="Acme", slug="acme")
    department = DepartmentFactory(organization=org, team_id="team_engineering")
    group = ConsumerGroupFactory(department=department, name="engineering", key=KEY)
    target = ProviderTargetFactory(
        organization=org, target_id="fake", provider="fake", base_url=fake_provider
    )
    chat = PriceFactory(model="fake-chat", max_output_tokens=1000)
    embed = PriceFactory(
        model="fake-embed",
        kind="embedding",
        input_per_mtok=Decimal("0.100000"),
        output_per_mtok=Decimal("0"),
        cached_input_per_mtok=None,
    )
    wallet = fund(department, "10.00")

    outsider_org = OrganizationFactory(name="Outsider", slug="outsider")
    outsider_department = DepartmentFactory(organization=outsider_org, team_id="team_engineering")
    ConsumerGroupFactory(department=outsider_department, name="engineering", key=OUTSIDER_KEY)
    ProviderTargetFactory(
        organization=outsider_org,
        target_id="fake",
        provider="fake",
        base_url=fake_provider,
        served_models=["outsider-only"],
    )
    PriceFactory(organization=outsider_org, model="outsider-only")
    outsider_wallet = fund(outsider_department, "5.00")
    return Setup(org, department, group, target, chat, embed, wallet, outsider_org, outsider_wallet)


@pytest.fixture
def gw(fake_provider, live_server):
    """The setup, served by the live server (committed data; flushed after the test)."""
    # Django's test server listens with a backlog of 10; a gateway takes hundreds of
    # simultaneous connections (on Linux, listen() again just raises the backlog).
    live_server.thread.httpd.socket.listen(1024)
    return make_setup(fake_provider)


@pytest.fixture
def gw_local(fake_provider, db):
    """The setup inside the test's transaction, for calls through Django's test client."""
    return make_setup(fake_provider)


@pytest.fixture
def oai(gw, live_server):
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=KEY, max_retries=0, timeout=20)


@pytest.fixture
def claude(gw, live_server):
    return anthropic.Anthropic(base_url=live_server.url, api_key=KEY, max_retries=0, timeout=20)


@pytest.fixture
def gateway_url(gw, live_server):
    return f"{live_server.url}/v1"


# Live-server tests flush the database after each test. Limiting them to the apps the gateway
# touches makes that flush a small TRUNCATE without re-creating content types and permissions.
GATEWAY_APPS = ["chargeback", "wallets", "gateway", "budgets", "reports"]
live_db = pytest.mark.django_db(transaction=True, available_apps=GATEWAY_APPS)


# --- the response cache (gateway/response_cache) ---
def _forget_cache_entries(store) -> None:
    """Delete the response cache's keys in the tests' own Redis database (never FLUSHDB: in CI
    the database is shared with whatever else the suite keeps there)."""
    client = getattr(store, "client", None)
    if client is not None:
        for key in client.scan_iter("kt:rc:*", count=1000):
            client.delete(key)


@pytest.fixture
def cache_store():
    """The response cache's store, empty: Redis at the tests' REDIS_URL (the embedded SQLite
    store without one)."""
    from gateway.response_cache.store import response_store, response_store_reset

    response_store_reset()
    store = response_store()
    _forget_cache_entries(store)
    yield store
    _forget_cache_entries(store)
    response_store_reset()


def cache_on(org, *, group=None, **settings):
    """Switch the response cache on for the organization (or one group) through its service."""
    from gateway.cache import clear_all
    from gateway.response_cache.services import cache_policy_set

    settings.setdefault("enabled", True)
    policy, _ = cache_policy_set(
        organization=org, consumer_group=group, actor="test", via="config", **settings
    )
    clear_all()  # keys carry their group's cache settings: reload them now
    return policy
