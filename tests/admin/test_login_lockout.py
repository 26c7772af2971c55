"""Sign-in lockouts on the one login form (/admin/login/, which the dashboards use too): after
KT_LOGIN_FAILURE_LIMIT (5) failures for a username, or from one client address, that username or
address is refused for KT_LOGIN_LOCKOUT_MINUTES (15), the right password included."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from chargeback.models import Membership
from tests.admin.conftest import PASSWORD, make_staff
from tests.factories import OrganizationFactory

LIMIT = 5


@pytest.fixture
def users(db):
    acme = OrganizationFactory(name="Acme", slug="acme-lock")
    outsider = OrganizationFactory(name="Outsider", slug="outsider-lock")
    made = {
        "alice": make_staff(acme, Membership.Role.FINANCE, "alice"),
        "bob": make_staff(acme, Membership.Role.VIEWER, "bob"),
        "olga": make_staff(outsider, Membership.Role.FINANCE, "olga"),
    }
    for user in made.values():
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return made


def sign_in(username: str, password: str, address: str = "203.0.113.7", **headers):
    """POST the admin's login form as a browser at `address` would: the form's response."""
    client = Client(REMOTE_ADDR=address, **headers)
    client.get("/admin/login/")
    response = client.post(
        "/admin/login/",
        {"username": username, "password": password, "next": "/admin/"},
    )
    response.signed_in = "_auth_user_id" in client.session
    return response


def test_the_right_password_is_refused_after_too_many_wrong_ones_for_that_username(users):
    for i in range(LIMIT):
        # a new address every time: the username alone is what locks
        assert not sign_in("alice", "wrong", address=f"198.51.100.{i}").signed_in

    response = sign_in("alice", PASSWORD, address="192.0.2.99")

    assert not response.signed_in
    assert response.status_code == 429
    text = response.content.decode()
    assert "Too many failed sign-ins" in text
    assert "locked for 15 minutes, even with the right password" in text
    assert response["Retry-After"] == "900"


def test_fewer_failures_than_the_limit_do_not_lock(users):
    for _ in range(LIMIT - 1):
        assert sign_in("alice", "wrong").status_code == 200  # the form again, with its error

    assert sign_in("alice", PASSWORD).signed_in


def test_a_successful_sign_in_starts_the_count_again(users):
    for _ in range(LIMIT - 1):
        sign_in("alice", "wrong")
    assert sign_in("alice", PASSWORD).signed_in
    for _ in range(LIMIT - 1):
        sign_in("alice", "wrong")

    assert sign_in("alice", PASSWORD).signed_in


def test_one_address_guessing_many_usernames_is_locked_out_for_every_username(users):
    for i in range(LIMIT):
        sign_in(f"nobody{i}", "wrong", address="203.0.113.50")

    refused = sign_in("bob", PASSWORD, address="203.0.113.50")
    elsewhere = sign_in("bob", PASSWORD, address="203.0.113.51")

    assert refused.status_code == 429
    assert not refused.signed_in
    assert elsewhere.signed_in


def test_a_lockout_ends_after_the_lockout_period(users):
    for _ in range(LIMIT):
        sign_in("alice", "wrong")
    assert sign_in("alice", PASSWORD).status_code == 429

    later = timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(seconds=5)
    with time_machine.travel(later, tick=False):
        assert sign_in("alice", PASSWORD).signed_in


def test_another_organizations_user_is_not_locked_by_a_lockout_of_this_one(users):
    for _ in range(LIMIT):
        sign_in("alice", "wrong", address="203.0.113.60")

    assert sign_in("olga", PASSWORD, address="203.0.113.61").signed_in


def test_the_dashboards_sign_in_through_the_same_locked_form(users):
    for _ in range(LIMIT):
        sign_in("alice", "wrong")
    response = Client().get("/dashboard/")

    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)
    assert settings.LOGIN_URL == "/admin/login/"
    assert sign_in("alice", PASSWORD).status_code == 429


def test_behind_a_trusted_proxy_each_client_address_is_counted_on_its_own(users, settings):
    settings.KT_TRUSTED_PROXIES = 1
    proxy = "10.0.0.2"
    for i in range(LIMIT):
        # The client wrote its own X-Forwarded-For; the proxy appended the address it saw.
        sign_in(
            f"nobody{i}",
            "wrong",
            address=proxy,
            HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 198.51.100.20",
        )

    locked = sign_in("bob", PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR="198.51.100.20")
    other_client = sign_in("bob", PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR="198.51.100.21")

    assert locked.status_code == 429  # the spoofed left-hand entries changed nothing
    assert other_client.signed_in
