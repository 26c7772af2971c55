"""HTTP hardening of the portal: the Content-Security-Policy header, HTTPS settings derived from
SITE_URL (Secure cookies, HSTS, redirect, the proxy's scheme header), `check --deploy` clean
with a production environment, and the OpenAPI schema behind KT_API_SCHEMA_PUBLIC."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import bearer_client

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "KT_EMBEDDED": "false",
    "SECRET_KEY": "x7Kq2mV9pL4sT8wZ1rB6nC3yH5jD0fG2aE7uQ9iO4kM1vX8bN6cR3tY5hJ0lP2sW",
    "SITE_URL": "https://chargeback.example.com",
    "ALLOWED_HOSTS": "chargeback.example.com",
}


def settings_in(env: dict) -> dict:
    """The security settings a fresh process computes from exactly this environment."""
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k, None) for k in ["
        "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', "
        "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_SSL_REDIRECT', 'SECURE_PROXY_SSL_HEADER', "
        "'KT_API_SCHEMA_PUBLIC']}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_clean_env(env),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _clean_env(env: dict) -> dict:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DATABASE_URL")}
    return {**keep, "DJANGO_SETTINGS_MODULE": "portal.settings", **env}


def test_a_production_environment_gets_secure_cookies_hsts_and_the_https_redirect():
    got = settings_in(PRODUCTION)

    assert got["SESSION_COOKIE_SECURE"] is True
    assert got["CSRF_COOKIE_SECURE"] is True
    assert got["SECURE_HSTS_SECONDS"] == 31536000
    assert got["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert got["SECURE_SSL_REDIRECT"] is True
    assert got["SECURE_PROXY_SSL_HEADER"] is None  # no proxy declared: the header is not trusted
    assert got["KT_API_SCHEMA_PUBLIC"] is False


def test_the_demo_on_plain_http_gets_none_of_them():
    got = settings_in({})

    assert got["SESSION_COOKIE_SECURE"] is False
    assert got["SECURE_HSTS_SECONDS"] == 0
    assert got["SECURE_SSL_REDIRECT"] is False
    assert got["KT_API_SCHEMA_PUBLIC"] is True


def test_a_declared_proxy_makes_its_forwarded_scheme_trusted_and_each_setting_can_be_overridden():
    got = settings_in({**PRODUCTION, "KT_TRUSTED_PROXIES": "1", "SECURE_SSL_REDIRECT": "false"})

    assert got["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert got["SECURE_SSL_REDIRECT"] is False


def test_check_deploy_is_clean_with_a_production_environment():
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_clean_env(PRODUCTION),
        capture_output=True,
        text=True,
    )

    assert out.returncode == 0, out.stderr + out.stdout
    assert "System check identified no issues" in out.stdout


@pytest.fixture
def https_behind_proxy(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.CSRF_COOKIE_SECURE = True


def test_behind_the_proxy_https_pages_carry_hsts_and_secure_cookies(db, https_behind_proxy):
    response = Client().get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")

    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response.cookies["csrftoken"]["secure"] is True


def test_behind_the_proxy_plain_http_is_redirected_to_https(db, https_behind_proxy):
    response = Client().get("/admin/login/", HTTP_X_FORWARDED_PROTO="http")

    assert response.status_code == 301
    assert response["Location"].startswith("https://")


def test_admin_dashboard_and_api_responses_carry_the_content_security_policy(db, settings, api):
    policy = settings.KT_CSP
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy

    assert Client().get("/admin/login/")["Content-Security-Policy"] == policy
    assert Client().get("/dashboard/")["Content-Security-Policy"] == policy  # the redirect
    assert api.get("/v1/wallets")["Content-Security-Policy"] == policy


def test_the_gateway_answers_without_the_portals_headers(db):
    response = Client().get("/v1/models")  # no key: the gateway's own 401

    assert response.status_code == 401
    assert "Content-Security-Policy" not in response


@pytest.fixture
def private_schema(settings):
    settings.KT_API_SCHEMA_PUBLIC = False


def test_a_public_schema_is_served_to_anyone(db, settings):
    settings.KT_API_SCHEMA_PUBLIC = True

    assert Client().get("/api/schema/").status_code == 200
    docs = Client().get("/api/docs/")
    assert docs.status_code == 200
    assert docs["Content-Security-Policy"] == settings.KT_CSP_API_DOCS


def test_a_private_schema_refuses_anonymous_clients(db, private_schema):
    schema = Client().get("/api/schema/")
    docs = Client().get("/api/docs/")

    assert schema.status_code == 401
    assert b"openapi" not in schema.content
    assert docs.status_code == 302
    assert docs["Location"].startswith("/admin/login/?next=/api/docs/")


def test_a_private_schema_is_served_with_an_admin_token_of_any_organization(
    db, private_schema, api, outsider_api
):
    assert api.get("/api/schema/").status_code == 200
    assert outsider_api.get("/api/schema/").status_code == 200
    assert bearer_client("kt_admin_not_a_token").get("/api/schema/").status_code == 401


def test_a_private_schema_is_served_to_a_staff_session_only(db, private_schema):
    users = get_user_model().objects
    staff, member = Client(), Client()
    staff.force_login(users.create_user("staffer", password="x", is_staff=True))
    member.force_login(users.create_user("member", password="x"))

    assert staff.get("/api/schema/").status_code == 200
    assert staff.get("/api/docs/").status_code == 200
    assert member.get("/api/schema/").status_code == 403
    assert member.get("/api/docs/").status_code == 302
