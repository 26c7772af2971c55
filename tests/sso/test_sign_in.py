"""Signing in through the real OpenID Connect provider (tests/sso/provider.py), the portal
driven by Django's test client and the provider's pages by HTTP: accounts created on the first
sign-in, groups mapped to roles and budget-owner departments on every sign-in, and the
organization decided by the connection and the provider's signed answer, never by the person."""

import html
from urllib.parse import parse_qs, urlencode, urlsplit

from django.contrib.auth import get_user_model
from django.test import Client

from chargeback.models import AuditLog, Membership
from sso.models import SsoIdentity
from tests.sso.conftest import PORTAL
from tests.sso.provider import sign_in_at_provider


def start(client: Client, slug: str, **query):
    response = client.get(f"/sso/{slug}/login/", query)
    assert response.status_code == 302, response.content
    return response["Location"]


def sign_in(client: Client, slug: str, login: str, **query):
    """The whole round trip in one browser (client): the portal's response to the callback."""
    callback = sign_in_at_provider(start(client, slug, **query), login)
    assert callback.startswith(f"{PORTAL}/sso/{slug}/callback/")
    return client.get(callback.removeprefix(PORTAL))


def signed_in_user(client: Client):
    user_id = client.session.get("_auth_user_id")
    return get_user_model().objects.get(pk=user_id) if user_id else None


def refusal_of(client: Client, response) -> str:
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/"
    assert signed_in_user(client) is None
    return html.unescape(client.get("/admin/login/").content.decode())


def test_a_first_sign_in_creates_the_account_with_the_role_its_group_maps_to(world):
    client = Client()

    response = sign_in(client, "acme", "alice", next="/dashboard/")

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    user = signed_in_user(client)
    assert user.username == "alice@acme.example"
    assert user.email == "alice@acme.example"
    assert not user.has_usable_password()  # the provider is the only way in
    assert user.is_staff
    assert not user.is_superuser
    assert user.membership.organization == world.acme
    assert user.membership.role == Membership.Role.FINANCE
    assert [g.name for g in user.groups.all()] == ["kt:finance"]
    identity = SsoIdentity.objects.get(user=user)
    assert (identity.organization, identity.subject) == (world.acme, "alice")
    assert identity.issuer == world.acme_connection.issuer
    actions = set(
        AuditLog.objects.filter(organization=world.acme, via="sso").values_list("action", flat=True)
    )
    assert actions == {"sso_identity.create", "membership.create"}
    assert client.get("/admin/chargeback/department/").status_code == 200

    # The next sign-in finds the same account.
    again = Client()
    sign_in(again, "acme", "alice")
    assert signed_in_user(again) == user
    assert get_user_model().objects.filter(email="alice@acme.example").count() == 1


def test_a_budget_owner_group_maps_to_its_departments_and_only_those(world):
    client = Client()

    sign_in(client, "acme", "bob")

    membership = signed_in_user(client).membership
    assert membership.role == Membership.Role.BUDGET_OWNER
    assert [d.team_id for d in membership.departments.all()] == ["team_support"]
    page = client.get("/dashboard/").content.decode()
    assert "Support" in page
    assert "Engineering" not in page
    assert client.get("/dashboard/departments/team_engineering/").status_code == 404
    assert client.get("/dashboard/departments/team_support/").status_code == 200


def test_a_person_in_no_mapped_group_is_refused_and_nothing_is_created(world):
    client = Client()

    page = refusal_of(client, sign_in(client, "acme", "carol"))

    assert "has no role in Acme" in page
    assert not get_user_model().objects.filter(email="carol@acme.example").exists()


def test_a_person_of_the_other_organization_never_lands_in_acme(world):
    """Gina is Globex's, at the same provider: it signs her in for Acme's client, but her ID
    token says org=globex, so Acme refuses her; through Globex's connection she lands in Globex."""
    client = Client()

    page = refusal_of(client, sign_in(client, "acme", "gina"))

    assert "not one of Acme's" in page
    assert not get_user_model().objects.filter(email="gina@globex.example").exists()
    assert not SsoIdentity.objects.filter(organization=world.acme).exists()

    sign_in(client, "globex", "gina")
    gina = signed_in_user(client)
    assert gina.membership.organization == world.globex
    assert gina.membership.role == Membership.Role.FINANCE
    assert client.get("/dashboard/departments/team_support/").status_code == 404
    assert "Support" not in client.get("/admin/chargeback/department/").content.decode()


def test_a_code_issued_to_the_other_organizations_client_is_refused_at_acmes_callback(world):
    client = Client()
    start(client, "acme")  # Acme's flow started in this browser
    globex_callback = sign_in_at_provider(start(client, "globex"), "gina")
    query = parse_qs(urlsplit(globex_callback).query)

    # Globex's answer (code and state) delivered to Acme's callback: the state is Globex's,
    # unknown under Acme.
    refusal_of(client, client.get(f"/sso/acme/callback/?{urlsplit(globex_callback).query}"))

    # With a state Acme did start: the code was issued to Globex's client, so Acme's exchange
    # of it fails at the provider.
    acme_state = parse_qs(urlsplit(start(client, "acme")).query)["state"][0]
    swapped = urlencode({"code": query["code"][0], "state": acme_state, "iss": query["iss"][0]})
    page = refusal_of(client, client.get(f"/sso/acme/callback/?{swapped}"))

    assert "did not confirm this sign-in" in page
    assert not get_user_model().objects.filter(email="gina@globex.example").exists()


def test_a_callback_that_was_not_started_in_this_browser_is_refused(world):
    """Login CSRF: an attacker's finished sign-in, sent to a victim's browser, does not sign the
    victim in as the attacker."""
    victim, attacker = Client(), Client()
    callback = sign_in_at_provider(start(attacker, "acme"), "alice")

    page = refusal_of(victim, victim.get(callback.removeprefix(PORTAL)))

    assert "was not started here" in page


def test_a_started_sign_in_is_used_once(world):
    client = Client()
    callback = sign_in_at_provider(start(client, "acme"), "carol")
    assert "has no role in Acme" in refusal_of(client, client.get(callback.removeprefix(PORTAL)))
    world.acme_connection.role_map = {"everyone": "viewer"}
    world.acme_connection.save()

    page = refusal_of(client, client.get(callback.removeprefix(PORTAL)))

    assert "was not started here" in page


def test_a_sign_in_never_takes_over_an_existing_account_with_the_same_email(world):
    """Mallory's provider account claims the e-mail (and so the username) of Acme's local
    break-glass owner: she gets an account of her own, with the role her groups give."""
    client = Client()

    sign_in(client, "acme", "mallory")

    mallory = signed_in_user(client)
    assert mallory != world.break_glass
    assert mallory.username == "breakglass@acme.example+acme"
    assert mallory.membership.role == Membership.Role.FINANCE
    world.break_glass.refresh_from_db()
    assert world.break_glass.membership.role == Membership.Role.OWNER
    assert world.break_glass.has_usable_password()


def test_each_sign_in_follows_the_groups_at_the_provider(world):
    client = Client()
    sign_in(client, "acme", "alice")
    alice = signed_in_user(client)
    connection = world.acme_connection

    connection.role_map = {"kt-finance": "viewer"}
    connection.save()
    sign_in(Client(), "acme", "alice")
    alice.refresh_from_db()
    assert alice.membership.role == Membership.Role.VIEWER

    # No group of hers maps to a role any more: refused, and her staff access goes.
    connection.role_map = {}
    connection.save()
    sign_in(Client(), "acme", "alice")
    alice.refresh_from_db()
    assert not Membership.objects.filter(user=alice).exists()
    assert not alice.is_staff
    assert AuditLog.objects.filter(action="membership.delete", via="sso").exists()


def test_without_a_groups_claim_roles_are_kept_in_the_portal(world):
    connection = world.acme_connection
    connection.groups_claim = ""
    connection.default_role = "viewer"
    connection.save()
    client = Client()
    sign_in(client, "acme", "carol")
    carol = signed_in_user(client)
    assert carol.membership.role == Membership.Role.VIEWER

    carol.membership.role = Membership.Role.FINANCE  # an owner raises her in the admin
    carol.membership.save()
    sign_in(Client(), "acme", "carol")

    carol.refresh_from_db()
    assert carol.membership.role == Membership.Role.FINANCE


def test_a_provider_that_names_another_issuer_is_refused(world, settings):
    # The same provider reached under another name: its discovery document names 127.0.0.1.
    port = world.acme_connection.issuer.rsplit(":", 1)[1]
    settings.KT_UPSTREAM_ALLOW_HOSTS = [*settings.KT_UPSTREAM_ALLOW_HOSTS, f"localhost:{port}"]
    world.acme_connection.issuer = f"http://localhost:{port}"
    world.acme_connection.save()
    client = Client()

    response = client.get("/sso/acme/login/")

    assert "issuer is not the configured one" in refusal_of(client, response)


def test_an_organization_without_single_sign_on_is_not_offered_it(world):
    world.acme_connection.enabled = False
    world.acme_connection.save()
    client = Client()

    for slug in ("acme", "nobody"):
        page = refusal_of(client, client.get(f"/sso/{slug}/login/"))
        assert "does not use single sign-on here" in page


def test_the_login_page_offers_passwords_and_single_sign_on(world):
    client = Client()
    page = client.get("/admin/login/?next=/dashboard/").content.decode()

    assert 'id="login-form"' in page
    assert 'id="sso-form"' in page
    assert "Globex IdP (Globex)" in page  # listed on the login page
    assert "Acme IdP" not in page  # not listed: reached by typing "acme"
    chosen = client.post("/sso/", {"organization": " Acme ", "next": "/dashboard/"})
    assert chosen.status_code == 200
    assert chosen.context["url"] == "/sso/acme/login/?next=%2Fdashboard%2F"
    assert 'content="0;url=/sso/acme/login/?next=%2Fdashboard%2F"' in chosen.content.decode()


def test_a_budget_owner_of_no_department_that_exists_is_refused(world):
    """Their group maps to a team the organization does not have: as a budget owner of nothing
    they would see only empty pages, so they are told why instead."""
    world.acme_connection.department_map = {"support-leads": ["team_gone"]}
    world.acme_connection.save(update_fields=["department_map"])
    client = Client()

    page = refusal_of(client, sign_in(client, "acme", "bob"))

    assert "budget owner of no department of Acme" in page
    assert not Membership.objects.filter(user__email="bob@acme.example").exists()
