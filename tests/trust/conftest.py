"""Issue 12 part 1 as attacks: Acme (the victim) keeps a provider key in the server's
environment, allowed for Acme only, and a stored secret; the outsider's admin token and staff
try to read them, or aim the gateway at a listener of their own, through `kt config apply`,
`POST /v1/config/apply` and the admin, over real HTTP against the live server."""

import html
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import httpx
import pytest
from django.contrib.auth import get_user_model

from chargeback.models import Membership
from chargeback.provider_secrets import provider_secret_set
from tests.trust.listener import Listener

VICTIM_ENV = "KT_VICTIM_OPENAI_KEY"
VICTIM_ENV_VALUE = "sk-victim-from-env-0123456789abcdefVICT"
VICTIM_SECRET = "openai-prod"
VICTIM_SECRET_VALUE = "sk-victim-stored-0123456789abcdefSTOR"
PASSWORD = "a-long-test-password-1"


@pytest.fixture
def victim(org, monkeypatch):
    """Acme with its provider key in the server's environment (the operator allows it for Acme
    only) and the same kind of key stored as a secret."""
    monkeypatch.setenv(VICTIM_ENV, VICTIM_ENV_VALUE)
    org.env_refs_allowed = ["OPENAI_API_KEY", VICTIM_ENV]
    org.save()
    provider_secret_set(
        organization=org, name=VICTIM_SECRET, value=VICTIM_SECRET_VALUE, actor="t", via="api"
    )
    return org


@pytest.fixture
def listener():
    """The attacker's server: nothing of the victim may ever reach it."""
    server = Listener()
    yield server
    server.close()


def kt(live_server, token: str, *args, stdin: str | None = None):
    env = {**os.environ, "KT_URL": live_server.url, "KT_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "kt.main", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def api(live_server, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


@dataclass
class AdminBrowser:
    """A staff member's browser: logs in through the login form and posts admin forms, with
    Django's CSRF token, over real HTTP."""

    client: httpx.Client

    def csrf(self, path: str) -> str:
        page = self.client.get(path)
        assert page.status_code == 200, (path, page.status_code)
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)

    def post(self, path: str, data: dict) -> httpx.Response:
        return self.client.post(path, data={"csrfmiddlewaretoken": self.csrf(path), **data})


def admin_browser(live_server, organization, role=Membership.Role.OWNER) -> AdminBrowser:
    username = f"{organization.slug}_{role}"
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    Membership.objects.create(user=user, organization=organization, role=role)
    browser = AdminBrowser(httpx.Client(base_url=live_server.url, timeout=30))
    login = browser.post("/admin/login/?next=/admin/", {"username": username, "password": PASSWORD})
    assert login.status_code == 302, login.text[:500]
    return browser


def form_errors(page: str) -> dict[str, str]:
    """{field name: its error text} from an admin change form (Django's fieldset markup: one
    `<div class="form-row ... field-NAME">` per row, its errors in a `ul.errorlist`)."""
    errors = {}
    for segment in page.split('<div class="form-row')[1:]:
        names = re.findall(r"field-(\w+)", segment.split(">", 1)[0])
        found = re.search(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', segment, re.S)
        if names and found:
            text = html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))
            errors[names[0]] = " ".join(text.split())
    return errors
