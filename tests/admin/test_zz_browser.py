"""One real-browser check: finance logs in and reads departments, events, the reconciliation
and the dashboards in Chromium, and the Content-Security-Policy (portal/security.py) refuses
nothing on those pages: no violation event, no CSP message in the console.

Named to run last in tests/admin: live_server needs a transactional database, which is flushed
afterwards, and the package's shared tenants (tests/admin/conftest.py) must outlive the other
modules. Screenshots go to a temporary folder, or to docs/img/ (for docs/admin.md) with
KT_SCREENSHOTS=1.
"""

import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
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
            console = []
            page.on("console", lambda message: console.append(message.text))
            # Runs before the page's own scripts, and outside its policy (a DevTools script).
            page.add_init_script(
                "window.kt_csp = [];"
                "document.addEventListener('securitypolicyviolation', e =>"
                " window.kt_csp.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            login = page.goto(f"{live_server.url}/admin/login/")
            assert "script-src 'self'" in login.headers["content-security-policy"]
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
            assert page.evaluate("window.kt_csp") == []

            page.goto(f"{live_server.url}/admin/reports/providerinvoice/reconciliation/")
            assert page.locator("#reconciliation").is_visible()
            assert page.evaluate("window.kt_csp") == []
            page.goto(f"{live_server.url}/admin/reports/providerinvoice/export/")
            assert page.locator("input.select-toggle").count() == 1
            assert page.evaluate("window.kt_csp") == []

            dashboard = page.goto(f"{live_server.url}/dashboard/")
            assert dashboard.headers["content-security-policy"] == settings.KT_CSP
            assert page.locator("svg.chart").count() >= 3  # the charts render under the policy
            assert page.evaluate("window.kt_csp") == []
            # The month picker submits through static/js/dashboard.js, not an inline handler.
            with page.expect_navigation():
                page.fill("input[type=month]", "2026-01")  # fires input and change
            page.wait_for_load_state("networkidle")  # one submit, and no second one pending
            assert "month=2026-01" in page.url
            page.goto(f"{live_server.url}/dashboard/departments/{acme.owned.team_id}/")
            assert page.evaluate("window.kt_csp") == []
        finally:
            browser.close()
    assert [line for line in console if "Content Security Policy" in line] == []
    assert (img / "admin-departments.png").stat().st_size > 10_000
    assert (img / "admin-events.png").stat().st_size > 10_000
