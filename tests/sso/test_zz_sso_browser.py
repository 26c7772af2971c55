"""Single sign-on end to end in a real browser (Debian's Chromium through playwright) against a
real OpenID Connect provider on loopback (tests/sso/provider.py): the login page offers both
ways in; finance and a budget owner of Acme sign in through the provider and see what their
groups give them; Globex's finance lead, whom the same provider signs in for Acme's client
too, is refused by Acme and lands in Globex; Acme's break-glass owner signs in with a password.
No Content-Security-Policy violation on the portal's pages on the way.

Each person gets a browser context of their own (their own cookies, at the portal and at the
provider), as people on their own machines. Screenshots go to a temporary folder, or to
docs/img/ with KT_SCREENSHOTS=1.
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.admin.test_zz_browser import ARGS, CHROMIUM
from tests.sso.conftest import BREAK_GLASS_PASSWORD, build_world
from tests.sso.provider import PASSWORD, start_provider

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
CSP_WATCH = (
    "window.kt_csp = [];"
    "document.addEventListener('securitypolicyviolation', e =>"
    " window.kt_csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)


@pytest.fixture(scope="module")
def provider(tmp_path_factory, live_server):
    """The provider sending people back to the live server (not the test client)."""
    started = start_provider(tmp_path_factory.mktemp("op"), [live_server.url])
    yield started
    started.stop()


class Person:
    """One person's browser: a context of their own, watching the portal's CSP."""

    def __init__(self, browser, portal: str):
        self.portal = portal
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.context.add_init_script(CSP_WATCH)
        self.console = []
        self.page = self.context.new_page()
        self.page.on("console", lambda message: self.console.append(message.text))

    def open(self, path: str):
        return self.page.goto(f"{self.portal}{path}")

    def sign_in_at_provider(self, login: str):
        self.page.wait_for_selector("#sign-in")  # the provider's own page
        assert self.page.url.startswith("http://127.0.0.1:")
        self.page.fill("#login", login)
        self.page.fill("#password", PASSWORD)
        self.page.click("#sign-in")
        self.page.wait_for_url(f"{self.portal}/**")

    def through_typed_organization(self, slug: str, login: str, path="/admin/login/"):
        self.open(path)
        self.page.fill("#id_organization", slug)
        self.page.click("#sso-form input[type=submit]")
        self.sign_in_at_provider(login)

    def csp_violations(self) -> list:
        if not self.page.url.startswith(self.portal):
            return []
        return self.page.evaluate("window.kt_csp")

    def close(self):
        self.context.close()
        assert [line for line in self.console if "Content Security Policy" in line] == []


@pytest.mark.browser
def test_people_sign_in_through_their_organizations_provider_in_a_real_browser(
    transactional_db, provider, live_server, settings, monkeypatch, tmp_path
):
    img = DOCS_IMG if os.environ.get("KT_SCREENSHOTS") == "1" else tmp_path
    world = build_world(provider, settings, monkeypatch)
    portal = live_server.url

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            # Finance of Acme: types the organization's id, signs in at the provider.
            alice = Person(browser, portal)
            login = alice.open("/admin/login/?next=/dashboard/")
            assert login.headers["content-security-policy"] == settings.KT_CSP
            assert alice.page.locator("#login-form").is_visible()  # passwords (break-glass)
            assert alice.page.locator("#sso-form").is_visible()
            assert alice.page.locator("a.kt-sso-button").inner_text() == "Globex IdP (Globex)"
            alice.page.screenshot(path=str(img / "login-sso.png"), full_page=True)
            alice.page.fill("#id_organization", "acme")
            alice.page.click("#sso-form input[type=submit]")
            alice.sign_in_at_provider("alice")
            assert alice.page.url == f"{portal}/dashboard/"
            text = alice.page.inner_text("body")
            assert "Support" in text
            assert "Engineering" in text
            assert alice.csp_violations() == []
            alice.open("/admin/chargeback/department/")
            assert alice.page.locator("#result_list tbody tr").count() == 2
            assert "alice@acme.example" in alice.page.inner_text("#user-tools").lower()
            assert "Globex" not in alice.page.content()
            alice.close()

            # A budget owner of Acme: the support leads' group gives Support, and only Support.
            bob = Person(browser, portal)
            bob.through_typed_organization("acme", "bob", path="/dashboard/")
            assert bob.page.url.startswith(f"{portal}/dashboard/")
            text = bob.page.inner_text("body")
            assert "Support" in text
            assert "Engineering" not in text
            assert bob.open("/dashboard/departments/team_engineering/").status == 404
            assert bob.open("/dashboard/departments/team_support/").status == 200
            assert bob.csp_violations() == []
            bob.close()

            # Globex's finance lead tries Acme: the provider signs her in (same provider, Acme's
            # client), but her token says org=globex: refused, back on the login page.
            gina = Person(browser, portal)
            gina.through_typed_organization("acme", "gina")
            assert gina.page.url.startswith(f"{portal}/admin/login/")
            assert "not one of Acme's" in gina.page.inner_text(".messagelist")
            assert gina.open("/dashboard/").url.startswith(f"{portal}/admin/login/")
            # Through Globex's button: already signed in at the provider, she lands in Globex.
            gina.page.click("a.kt-sso-button")
            # (the dashboard sent her to the login page: it is where she comes back to)
            gina.page.wait_for_url(f"{portal}/dashboard/")
            text = gina.page.inner_text("body")
            assert "Globex finance" in text
            assert "Support" not in text
            assert gina.open("/dashboard/departments/team_support/").status == 404
            assert gina.open("/admin/chargeback/department/").ok
            assert "Support" not in gina.page.inner_text("#result_list")
            assert gina.csp_violations() == []
            gina.close()

            # Acme's break-glass owner: a local password, on the same page.
            owner = Person(browser, portal)
            owner.open("/admin/login/")
            owner.page.fill("#id_username", world.break_glass.username)
            owner.page.fill("#id_password", BREAK_GLASS_PASSWORD)
            owner.page.click("#login-form input[type=submit]")
            owner.page.wait_for_selector("#site-name")
            assert owner.page.url == f"{portal}/admin/"
            assert "breakglass@acme.example" in owner.page.inner_text("#user-tools").lower()
            owner.close()
        finally:
            browser.close()
    people = world.acme.memberships.order_by("role").values_list("user__username", "role")
    assert list(people) == [
        ("bob@acme.example", "budget_owner"),
        ("alice@acme.example", "finance"),
        ("breakglass@acme.example", "owner"),
    ]
    assert list(world.globex.memberships.values_list("user__username", "role")) == [
        ("gina@globex.example", "finance")
    ]
    assert (img / "login-sso.png").stat().st_size > 10_000
