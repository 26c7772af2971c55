"""Local passwords beside single sign-on: break-glass accounts sign in with theirs, django-axes
still locks password guessing, accounts the provider created have no password, and a sign-in
through the provider from a locked address unlocks nothing."""

from django.test import Client

from tests.sso.conftest import BREAK_GLASS_PASSWORD, PORTAL
from tests.sso.provider import sign_in_at_provider

LIMIT = 5  # KT_LOGIN_FAILURE_LIMIT


def password_sign_in(username: str, password: str, address: str) -> tuple[int, bool]:
    client = Client(REMOTE_ADDR=address)
    response = client.post(
        "/admin/login/", {"username": username, "password": password, "next": "/admin/"}
    )
    return response.status_code, "_auth_user_id" in client.session


def provider_sign_in(login: str, address: str) -> Client:
    client = Client(REMOTE_ADDR=address)
    start = client.get("/sso/acme/login/")["Location"]
    callback = sign_in_at_provider(start, login)
    client.get(callback.removeprefix(PORTAL))
    return client


def test_a_break_glass_account_signs_in_with_its_password(world):
    status, signed_in = password_sign_in(
        "breakglass@acme.example", BREAK_GLASS_PASSWORD, "192.0.2.10"
    )

    assert (status, signed_in) == (302, True)


def test_an_account_the_provider_created_has_no_password_to_guess(world):
    assert "_auth_user_id" in provider_sign_in("alice", "192.0.2.20").session

    for password in ("", "!", "unusable"):
        assert not password_sign_in("alice@acme.example", password, "192.0.2.21")[1]


def test_password_lockouts_hold_and_a_provider_sign_in_from_the_locked_address_unlocks_nothing(
    world,
):
    guesser = "198.51.100.7"
    for _ in range(LIMIT):
        assert not password_sign_in("breakglass@acme.example", "guess", guesser)[1]
    assert password_sign_in("breakglass@acme.example", BREAK_GLASS_PASSWORD, guesser)[0] == 429

    # Someone with an account at the provider signs in from the guessing address: that works
    # (it is no password attempt) and resets none of the password failures.
    assert "_auth_user_id" in provider_sign_in("alice", guesser).session

    status, signed_in = password_sign_in(
        "breakglass@acme.example", BREAK_GLASS_PASSWORD, "192.0.2.99"
    )
    assert (status, signed_in) == (429, False)  # the username is still locked
    assert password_sign_in("breakglass@acme.example", BREAK_GLASS_PASSWORD, guesser)[0] == 429


def test_an_outsider_organizations_password_staff_are_not_affected(world):
    """Globex has no local account here; its people sign in through the provider only, and the
    password form refuses their e-mail."""
    assert password_sign_in("gina@globex.example", "anything", "192.0.2.30") == (200, False)
