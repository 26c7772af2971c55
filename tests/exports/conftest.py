from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.factories import AdminTokenFactory, DepartmentFactory, OrganizationFactory, PriceFactory


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Exports are saved into default storage: a fresh directory per test."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def eager(settings):
    """Run Celery tasks in-process (the demo's mode); the worker test uses a real worker.
    Through Django's settings: see tests/conftest.py."""
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def support(org):
    return DepartmentFactory(organization=org, team_id="team_support", name="Support")


@pytest.fixture
def model():
    """A model whose price changes on 2026-05-16 (00:00 UTC): input 2.50 -> 3.00, output 10 -> 12."""
    PriceFactory(
        model="fake-gpt",
        input_per_mtok=Decimal("2.500000"),
        output_per_mtok=Decimal("10.000000"),
        cached_input_per_mtok=Decimal("1.250000"),
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        effective_to=datetime(2026, 5, 16, tzinfo=UTC),
    )
    PriceFactory(
        model="fake-gpt",
        input_per_mtok=Decimal("3.000000"),
        output_per_mtok=Decimal("12.000000"),
        cached_input_per_mtok=Decimal("1.500000"),
        effective_from=datetime(2026, 5, 16, tzinfo=UTC),
    )
    return "fake-gpt"


@pytest.fixture
def outsider_with_usage(outsider_org, model):
    """An outsider organization with its own May usage: none of it may show up in org's files."""
    from tests.exports.usage import fund, record_usage

    dept = DepartmentFactory(organization=outsider_org, team_id="team_engineering")
    fund(dept)
    record_usage(department=dept, at=datetime(2026, 5, 10, 12, tzinfo=UTC), model=model)
    AdminTokenFactory(organization=outsider_org, raw="kt_admin_outsider_exports")
    return outsider_org


@pytest.fixture
def utc_plus_2():
    return OrganizationFactory(name="Joburg", slug="joburg", time_zone="Africa/Johannesburg")
