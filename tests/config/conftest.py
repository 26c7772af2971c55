from pathlib import Path

import pytest
from django.db import connection

from chargeback.models import AuditLog, ConsumerGroup, Department, Organization, ProviderTarget

SEED_FILE = Path(__file__).resolve().parents[2] / "examples" / "keeptrusts.yaml"
SEED_KEYS = ["kt_cg_engineering_prod", "kt_cg_support_prod", "kt_cg_legal_prod"]


@pytest.fixture
def seed_text():
    return SEED_FILE.read_text()


def without_providers(text: str) -> str:
    """The seed without its `providers` section: what an organization that the operator allows
    no environment variable (the outsider) can apply."""
    head, rest = text.split("providers:", 1)
    return head + "consumer_groups:" + rest.split("consumer_groups:", 1)[1]


def tenancy_snapshot() -> dict:
    """Every tenancy row, to prove a refused file changed nothing at all."""
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Organization, Department, ConsumerGroup, ProviderTarget, AuditLog)
    }


def database_text() -> str:
    """All rows of all tables as one string, to search for secrets that must not be stored."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The demo admin's password is hashed on every demo_setup; PBKDF2 is slow by design.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
