"""A month choice on the departments list and on reconciliation (issue 17 part 5). The clock
is pinned to 2026-12-05: May 2026 is seven months back, outside reconciliation's default six."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from chargeback.models import Membership
from tests.admin.conftest import make_event, make_staff
from tests.factories import ConsumerGroupFactory, DepartmentFactory, OrganizationFactory

DEPARTMENTS = reverse("admin:chargeback_department_changelist")
RECONCILIATION = reverse("admin:reports_providerinvoice_reconciliation")
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
IN_MAY = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(client):
    with time_machine.travel(NOW, tick=False):
        org = OrganizationFactory(name="Shop", slug="shop")
        dept = DepartmentFactory(organization=org, team_id="team_1", name="Dept 1")
        ConsumerGroupFactory(organization=org, department=dept, name="g-1", key="kt_cg_shop_1")
        make_event(org, dept, marker="may", cost="5.25", created_at=IN_MAY)
        make_event(org, dept, marker="dec", cost="2.10")
        client.force_login(make_staff(org, Membership.Role.FINANCE, "shop_finance"))
        yield client


def _spend(response):
    (row,) = response.context["cl"].result_list
    return response.context["cl"].model_admin.mtd_spend_column(row)


def test_the_departments_list_shows_the_current_month_or_the_one_chosen(shop):
    with time_machine.travel(NOW, tick=False):
        current = shop.get(DEPARTMENTS)
        may = shop.get(DEPARTMENTS, {"month": "2026-05"})

    assert _spend(current) == "2.10"
    assert _spend(may) == "5.25"
    page = current.content.decode()
    assert "?month=2026-05" in page  # offered in the filter
    assert "May 2026" in page
    assert "This month" in page


def test_reconciliation_shows_a_chosen_month_and_labels_the_window_in_use(shop):
    with time_machine.travel(NOW, tick=False):
        default = shop.get(RECONCILIATION)
        may = shop.get(RECONCILIATION, {"month": "2026-05"})
        twelve = shop.get(RECONCILIATION, {"months": "12"})

    assert [r.month.isoformat() for r in default.context["rows"]] == ["2026-12-01"]
    assert [(r.month.isoformat(), r.recorded) for r in may.context["rows"]] == [
        ("2026-05-01", Decimal("5.25"))
    ]
    assert "May 2026 only." in may.content.decode()
    assert '<option value="2026-05" selected>May 2026</option>' in may.content.decode()
    assert {r.month.isoformat() for r in twelve.context["rows"]} == {"2026-05-01", "2026-12-01"}
    page = twelve.content.decode()
    assert "Last 12 months." in page
    assert "<strong>last 12 months</strong>" in page
    assert 'href="?months=6">last 6 months</a>' in page
    assert 'href="?months=12"' not in page  # the window in use is not offered again
