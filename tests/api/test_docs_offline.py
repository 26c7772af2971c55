"""`/api/docs/` works without internet: the page loads ReDoc from this project's static files
(drf-spectacular-sidecar), nothing from another host, and those files are served."""

import re

import pytest

pytestmark = pytest.mark.django_db

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def test_the_docs_page_loads_only_local_assets_and_they_are_served(client, settings):
    settings.KT_API_SCHEMA_PUBLIC = True

    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assets = ASSET.findall(page)
    assert any(a.endswith("redoc.standalone.js") for a in assets), assets
    assert "Redoc.init" in page or "<redoc" in page
    for asset in assets:
        assert asset.startswith("/"), asset  # this host only
        assert not asset.startswith("//"), asset
    assert "https://" not in page
    assert "http://" not in page
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        body = b"".join(served.streaming_content) if served.streaming else served.content
        assert len(body) > 10_000, asset  # the bundle itself, not an error page


def test_the_docs_page_policy_allows_no_other_host(client, settings):
    settings.KT_API_SCHEMA_PUBLIC = True

    policy = client.get("/api/docs/")["Content-Security-Policy"]

    assert "script-src 'self' 'unsafe-inline';" in policy
    assert "https:" not in policy
    assert "http:" not in policy
