"""/healthz and /readyz: cheap, unauthenticated, answered before the rest of the stack, and
readiness naming what is down (a real PostgreSQL and Redis, and closed ports for the outages)."""

import pytest

from gateway.catalog import DEFAULT_CATALOG, catalog_load
from gateway.models import Price
from tests.ports import free_port

pytestmark = [
    pytest.mark.django_db,
    # The outage tests point a database alias at a closed port for the probe only.
    pytest.mark.filterwarnings("ignore:Overriding setting DATABASES:UserWarning"),
]


@pytest.fixture
def catalog():
    """The default pricing catalog, as migrations load it (a flushing test may have removed it)."""
    if not Price.objects.filter(organization__isnull=True).exists():
        catalog_load(path=DEFAULT_CATALOG)


def test_healthz_answers_without_touching_anything(client, settings, django_assert_num_queries):
    settings.ALLOWED_HOSTS = ["portal.example"]  # a probe comes with the pod's address as Host
    settings.SECURE_SSL_REDIRECT = True  # and over plain http
    with django_assert_num_queries(0):
        response = client.get("/healthz", HTTP_HOST="10.0.0.7:41002")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_on_the_real_setup(client, settings, catalog):
    assert settings.REDIS_URL, "run the tests with REDIS_URL (a real Redis)"
    settings.ALLOWED_HOSTS = ["portal.example"]
    response = client.get("/readyz", HTTP_HOST="10.0.0.7:41002")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {
        "database:default": "ok",
        "migrations": "ok",
        "pricing": "ok",
        "redis": "ok",
    }


def test_not_ready_when_postgresql_is_unreachable(client, settings, catalog):
    closed = free_port()
    settings.DATABASES = {
        **settings.DATABASES,
        "default": {**settings.DATABASES["default"], "HOST": "127.0.0.1", "PORT": str(closed)},
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database:default"].startswith("OperationalError")
    assert str(closed) in body["checks"]["database:default"]
    assert body["checks"]["redis"] == "ok"  # only what failed is named as failing


def test_not_ready_when_a_second_database_is_unreachable(client, settings, catalog):
    closed = free_port()
    settings.DATABASES = {
        **settings.DATABASES,
        "replica": {**settings.DATABASES["default"], "HOST": "127.0.0.1", "PORT": str(closed)},
    }
    body = client.get("/readyz").json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database:default"] == "ok"
    assert body["checks"]["database:replica"].startswith("OperationalError")


def test_not_ready_when_redis_is_unreachable(client, settings, catalog):
    closed = free_port()
    settings.REDIS_URL = f"redis://127.0.0.1:{closed}/9"
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed}/9"
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"].startswith("ConnectionError")
    assert checks["database:default"] == "ok"
    assert "broker" not in checks  # the same server as REDIS_URL: named once


def test_not_ready_when_the_broker_alone_is_unreachable(client, settings, catalog):
    closed = free_port()
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed}/0"
    checks = client.get("/readyz").json()["checks"]
    assert checks["redis"] == "ok"
    assert checks["broker"].startswith("ConnectionError")


def test_not_ready_without_a_pricing_catalog(client):
    Price.objects.filter(organization__isnull=True).delete()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["pricing"] == "no prices loaded (manage.py load_prices)"


def test_not_ready_while_a_migration_is_missing(client, catalog):
    from django.db import connection

    from observability import health

    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = 'gateway' AND name = '0002_pricing_default_catalog'"
        )
    health._migrated = False
    try:
        response = client.get("/readyz")
    finally:
        health._migrated = False
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == (
        "1 migration(s) not applied: gateway.0002_pricing_default_catalog"
    )


def test_probes_take_no_other_method(client):
    assert client.post("/healthz").status_code == 405


def test_the_database_check_uses_the_connections_libpq_options(client, settings, catalog):
    """sslmode and the like reach the probe's connection (here one that cannot be met);
    Django's own options (the pool) do not."""
    default = settings.DATABASES["default"]
    options = {
        **default.get("OPTIONS", {}),
        "sslmode": "verify-full",
        "sslrootcert": "/nonexistent",
    }
    settings.DATABASES = {**settings.DATABASES, "default": {**default, "OPTIONS": options}}
    checks = client.get("/readyz").json()["checks"]
    assert checks["database:default"].startswith("OperationalError")
    assert "/nonexistent" in checks["database:default"] or "SSL" in checks["database:default"]
