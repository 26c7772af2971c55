"""One real-browser check: finance logs in and reads departments and events in Chromium.

Named to run last in tests/admin: live_server needs a transactional database, which is flushed
afterwards, and the package's shared tenants (tests/admin/conftest.py) must outlive the other
modules. Screenshots go to a temporary folder, or to docs/img/ (for docs/admin.md) with
KT_SCREENSHOTS=1.
"""

import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import sync_playwright

from tests.admin.conftest import PASSWORD, make_event

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.mark.browser
def test_finance_reads_departments_and_events_in_a_real_browser(tenants, live_server, tmp_path):
    img = DOCS_IMG if os.environ.get("KT_SCREENSHOTS") == "1" else tmp_path
    acme = tenants["acme"]
    now = timezone.now()
    for i, (cost, model, user) in enumerate(
        [
            ("12.40", "gpt-4o", "alice"),
            ("3.10", "gpt-4o-mini", "bob"),
            ("0.87", "claude-sonnet", "carol"),
            ("25.00", "gpt-4o", "alice"),
        ]
    ):
        make_event(
            acme.org,
            acme.owned if i % 2 == 0 else acme.other,
            marker="acme",
            cost=cost,
            model_requested=model,
            user=user,
            created_at=now,
        )
    img.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 800})
            page.goto(f"{live_server.url}/admin/login/")
            page.fill("#id_username", "acme_finance")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_selector("#site-name")

            page.goto(f"{live_server.url}/admin/chargeback/department/")
            rows = page.locator("#result_list tbody tr")
            assert rows.count() == 2
            text = page.inner_text("#result_list")
            assert "month-to-date spend" in text.lower()
            # acme eng: 0.25 + 12.40 + 0.87; acme ops: 0.25 + 3.10 + 25.00
            assert "13.52" in text
            assert "28.35" in text
            assert "outsider" not in page.content().lower()
            page.screenshot(path=str(img / "admin-departments.png"), full_page=True)

            page.goto(f"{live_server.url}/admin/gateway/usageevent/")
            page.click("#toggle-nav-sidebar")  # the event table is wide: give it the room
            assert page.locator("#result_list td.field-cost_column").first.is_visible()
            total = page.inner_text("#kt-total-cost")
            assert Decimal(total) == Decimal("41.87")
            assert page.inner_text("#kt-total-requests") == "6"
            assert "outsider" not in page.content().lower()
            page.screenshot(path=str(img / "admin-events.png"), full_page=True)
        finally:
            browser.close()
    assert (img / "admin-departments.png").stat().st_size > 10_000
    assert (img / "admin-events.png").stat().st_size > 10_000
