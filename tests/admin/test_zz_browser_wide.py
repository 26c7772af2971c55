"""At 1440 x 900 a finance person sees the money columns without scrolling sideways: the usage
events' Cost, the wallets' allocated, spent and status, the export jobs' file link; the wallet
page shows available, total spent and status; an export job's manifest reads as a table.

Named after test_zz_browser.py (live_server flushes the database): it makes its own data."""

from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import sync_playwright

from chargeback.models import Membership
from reports.models import ExportJob
from tests.admin.conftest import PASSWORD, make_event, make_staff
from tests.admin.test_zz_browser import ARGS, CHROMIUM
from tests.factories import ConsumerGroupFactory, DepartmentFactory, OrganizationFactory
from wallets import services
from wallets.models import Wallet

WIDTH, HEIGHT = 1440, 900


def _shop():
    org = OrganizationFactory(name="Wide Shop Incorporated", slug="wideshop")
    departments = []
    for n in range(3):
        dept = DepartmentFactory(
            organization=org, team_id=f"team_platform_engineering_{n}", name=f"Platform {n}"
        )
        ConsumerGroupFactory(
            organization=org,
            department=dept,
            name=f"platform-engineering-{n}",
            key=f"kt_cg_wide_{n}",
        )
        services.wallet_allocate(department=dept, amount=Decimal("20000.00"), currency="USD")
        departments.append(dept)
        wallet = services.wallet_for_team(department=dept)
        for i in range(3):
            request_id = f"req_wide_{n}_{i}_abcdefghijklmnopqrstuvwxyz"
            hold = services.hold_place(wallet=wallet, amount=Decimal("2000"), request_id=request_id)
            services.hold_capture(hold=hold, amount=Decimal("1234.567891"))
            make_event(
                org,
                dept,
                marker="wide",
                cost="1234.567891",
                user=f"firstname.lastname-{i}@example.com",
                model_requested="claude-sonnet-4-5-20250929",
                request_id=request_id,
                wallet=wallet,
            )
    job = ExportJob.objects.create(
        organization=org,
        type="chargeback",
        format="csv",
        date_from=date(2026, 5, 1),
        date_to=date(2026, 5, 31),
        status=ExportJob.Status.COMPLETED,
        rows_written=3,
        rows_expected=3,
        requested_by="finance.person@wideshop.example",
        manifest={
            "rows": 3,
            "sha256": "ab" * 32,
            "columns": ["team_id", "spend"],
            "totals": {"spend": "3703.70", "currency": "USD"},
        },
        finished_at=timezone.now(),
    )
    make_staff(org, Membership.Role.FINANCE, "wide_finance")
    return org, departments, job


def _visible_without_scrolling(page, selector: str) -> None:
    cell = page.locator(selector).first
    assert cell.count() == 1, selector
    box = cell.bounding_box()
    assert box is not None, selector
    assert box["x"] >= 0, selector
    assert box["x"] + box["width"] <= WIDTH, f"{selector} ends at {box['x'] + box['width']}"
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH, selector


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_money_columns_fit_1440_pixels(live_server):
    _org, departments, job = _shop()
    wallet = Wallet.objects.get(department=departments[0], scope=Wallet.Scope.TEAM)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            # The pages' Content-Security-Policy refuses nothing (as in test_zz_browser.py).
            page.add_init_script(
                "window.kt_csp = [];"
                "document.addEventListener('securitypolicyviolation', e =>"
                " window.kt_csp.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            page.goto(f"{live_server.url}/admin/login/")
            page.fill("#id_username", "wide_finance")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_selector("#site-name")

            page.goto(f"{live_server.url}/admin/gateway/usageevent/")
            _visible_without_scrolling(page, "#result_list td.field-cost_column")

            page.goto(f"{live_server.url}/admin/wallets/wallet/")
            for column in ("allocated_column", "spent_column", "status_column"):
                _visible_without_scrolling(page, f"#result_list td.field-{column}")

            page.goto(f"{live_server.url}/admin/reports/exportjob/")
            _visible_without_scrolling(page, "#result_list td.field-download_link a")

            page.goto(f"{live_server.url}/admin/wallets/wallet/{wallet.pk}/change/")
            text = page.inner_text("#content-main")
            for label in ("Available", "Total spent", "Status"):
                assert label in text, label
            assert "16,296.30" in text  # available: 20000.00 - 3 x 1234.567891, to the cent
            assert "3,703.70" in text  # total spent

            page.goto(f"{live_server.url}/admin/reports/exportjob/{job.pk}/change/")
            manifest = page.locator(".field-manifest_table table")
            assert manifest.is_visible()
            assert "sha256" in manifest.inner_text()
            assert "{" not in page.inner_text(".field-manifest_table")
            assert page.evaluate("window.kt_csp") == []
        finally:
            browser.close()
