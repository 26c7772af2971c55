"""`/api/docs/` in Chromium with every other host unreachable (no internet): ReDoc, served from
this project's static files, renders the schema under the page's Content-Security-Policy, which
refuses no script or style."""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from tests.admin.test_zz_browser import ARGS, CHROMIUM

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.browser
def test_the_docs_page_renders_offline(live_server, settings):
    settings.KT_API_SCHEMA_PUBLIC = True
    here = urlsplit(live_server.url).netloc
    elsewhere = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})

            def offline(route):
                if urlsplit(route.request.url).netloc in (here, ""):
                    route.continue_()
                else:  # the internet is not there
                    elsewhere.append(route.request.url)
                    route.abort()

            page.route("**/*", offline)
            page.add_init_script(
                "window.kt_csp = [];"
                "document.addEventListener('securitypolicyviolation', e =>"
                " window.kt_csp.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            page.goto(f"{live_server.url}/api/docs/")
            page.wait_for_selector("h1:has-text('AI spend chargeback API')", timeout=20_000)
            assert page.get_by_text("/v1/wallets/allocate").first.is_visible() or (
                "/v1/wallets" in page.content()
            )
            # The one thing refused: ReDoc's "powered by" logo on its CDN (it has no option to
            # leave it out); the page needs it for nothing.
            refused = page.evaluate("window.kt_csp")
            assert all(v.startswith("img-src https://cdn.redoc.ly/") for v in refused), refused
        finally:
            browser.close()
    assert all(url.startswith("https://cdn.redoc.ly/") for url in elsewhere), elsewhere
