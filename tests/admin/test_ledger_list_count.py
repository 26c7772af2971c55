"""The ledger and hold lists count their rows only up to a cap (chargeback/admin_paging.py): a
year of captures is millions of entries, and a full COUNT on every page view is the slowest
part of the page. Under the cap the count is exact; past it the page says "more than"."""

from decimal import Decimal

import pytest
from django.urls import reverse

from chargeback.admin_paging import CappedCountPaginator
from chargeback.models import Membership
from tests.admin.conftest import make_staff
from tests.factories import DepartmentFactory, OrganizationFactory
from wallets import services
from wallets.admin import HoldAdmin, LedgerEntryAdmin
from wallets.models import Hold, LedgerEntry

LEDGER = reverse("admin:wallets_ledgerentry_changelist")
HOLDS = reverse("admin:wallets_hold_changelist")


@pytest.fixture
def shop(db, client):
    org = OrganizationFactory(name="Shop", slug="shop")
    rival = OrganizationFactory(name="Rival", slug="rival")
    for organization in (org, rival):
        dept = DepartmentFactory(organization=organization, team_id="team_1")
        for n in range(6):
            services.wallet_allocate(department=dept, amount=Decimal("5"), currency="USD")
            services.hold_place(
                wallet=dept.wallets.get(),
                amount=Decimal("1"),
                request_id=f"r-{organization.pk}-{n}",
            )
    client.force_login(make_staff(org, Membership.Role.FINANCE, "shop_finance"))
    return org


def test_under_the_cap_the_count_is_exact(shop, client):
    entries = LedgerEntry.objects.filter(organization=shop).count()
    response = client.get(LEDGER)
    assert response.context["cl"].result_count == entries
    assert "more than" not in response.content.decode()
    assert f"{entries} ledger entries" in " ".join(response.content.decode().split())


def test_past_the_cap_the_list_says_more_than(shop, client, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 4)
    for model_admin in (LedgerEntryAdmin, HoldAdmin):
        monkeypatch.setattr(model_admin, "list_per_page", 2)
    assert LedgerEntry.objects.filter(organization=shop).count() > 4
    assert Hold.objects.filter(organization=shop).count() == 6
    for url, name, pages in ((LEDGER, "ledger entries", (1, 2)), (HOLDS, "holds", (1, 2))):
        response = client.get(url)
        page = " ".join(response.content.decode().split())
        assert response.context["cl"].result_count == 4
        assert f"more than 4</span> {name}" in page
        # Pages within the cap list their rows as before.
        for number in pages:
            listed = client.get(url, {"p": number}).context["cl"].result_list
            assert len(listed) == 2
