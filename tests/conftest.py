import os
from datetime import datetime

import psycopg
import pytest
import time_machine
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import AdminTokenFactory, DepartmentFactory, OrganizationFactory


def pytest_configure(config):
    """`KT_TEST_NOW=2028-02-29T23:30:00+00:00 make test` runs the suite with this process's
    clock moved to that moment (and ticking): a test whose outcome depends on the date shows."""
    now = os.environ.get("KT_TEST_NOW")
    if now:
        time_machine.travel(datetime.fromisoformat(now), tick=True).start()


@pytest.fixture(autouse=True)
def _celery_mode(request, settings):
    """Tasks run in-process unless the test starts a real worker (`@pytest.mark.celery_worker`):
    with REDIS_URL set, nothing should be queued where no worker will ever read it.

    Switched through Django's settings, which Celery reads on every lookup: with the pinned
    Celery 5.6, `app.conf.task_always_eager = ...` would be shadowed by the setting's
    `CELERY_`-prefixed name (Celery looks the prefixed key up first, in every map)."""
    settings.CELERY_TASK_ALWAYS_EAGER = request.node.get_closest_marker("celery_worker") is None
    settings.CELERY_TASK_EAGER_PROPAGATES = True


# A Fernet key for the stored provider secrets of every test (chargeback/secretbox.py); tests of
# a missing or rotated key set KT_SECRETS_KEY themselves.
TEST_SECRETS_KEY = "t7pxtGzVeIKvm-YOBjVSBVkPHW6iURzJN7T8HooVm_4="


@pytest.fixture(scope="session", autouse=True)
def _secrets_key():
    from django.conf import settings

    saved = settings.KT_SECRETS_KEY
    settings.KT_SECRETS_KEY = TEST_SECRETS_KEY
    yield
    settings.KT_SECRETS_KEY = saved


@pytest.fixture
def org():
    # The seed's file names {env: OPENAI_API_KEY}: the operator allows that one for Acme, as the
    # demo does; the outsider is allowed nothing (chargeback/env_refs.py).
    return OrganizationFactory(name="Acme", slug="acme", env_refs_allowed=["OPENAI_API_KEY"])


@pytest.fixture
def outsider_org():
    """Another tenant: nothing of it may ever show up for `org`."""
    return OrganizationFactory(name="Outsider", slug="outsider")


@pytest.fixture
def engineering(org):
    return DepartmentFactory(organization=org, team_id="team_engineering", name="Engineering")


@pytest.fixture
def admin_token(org):
    raw = "kt_admin_acme_test"
    AdminTokenFactory(organization=org, raw=raw)
    return raw


@pytest.fixture
def outsider_token(outsider_org):
    raw = "kt_admin_outsider_test"
    AdminTokenFactory(organization=outsider_org, raw=raw)
    return raw


def bearer_client(token: str) -> APIClient:
    """A DRF test client that sends `Authorization: Bearer <token>`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def api(admin_token):
    """The management API as `org`'s admin."""
    return bearer_client(admin_token)


@pytest.fixture
def outsider_api(outsider_token):
    """The management API as the outsider organization's admin."""
    return bearer_client(outsider_token)


# --- gateway ---
@pytest.fixture(autouse=True)
def _gateway_caches_cleared():
    """The gateway caches keys, targets, prices and wallets per process for a few seconds;
    tests that reuse a key (e.g. the seed's kt_cg_engineering_prod) must not see the last
    test's organization."""
    from gateway.cache import clear_all

    clear_all()
    yield
    clear_all()


@pytest.fixture
def connect():
    """Connections of the test's own to the test database (beside Django's), for tests that
    hold locks or commit in parallel; closed (their locks dropped) however the test ends."""
    opened = []

    def open_one(autocommit=False):
        settings = connection.settings_dict
        conn = psycopg.connect(
            dbname=settings["NAME"],
            user=settings["USER"],
            host=settings["HOST"] or "127.0.0.1",
            port=settings["PORT"] or 5432,
            password=settings["PASSWORD"] or None,
            autocommit=autocommit,
        )
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        conn.close()
