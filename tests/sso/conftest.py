"""Two organizations that sign in through the same real OpenID Connect provider (started on
loopback, tests/sso/provider.py), each with its own client: Acme keeps the client secret as a
stored provider secret, Globex as an environment variable the operator allows it. The `org`
claim is what proves whose employee a person is (as Google's `hd` or Entra ID's `tid`)."""

from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model

from chargeback.models import Membership
from chargeback.provider_secrets import provider_secret_set
from sso.connections import sso_connection_save
from tests.admin.conftest import _fast_passwords  # noqa: F401  (a fixture, used here too)
from tests.factories import DepartmentFactory, OrganizationFactory
from tests.sso.provider import CLIENTS, client_secret, start_provider

PORTAL = "http://testserver"  # Django's test client
BREAK_GLASS_PASSWORD = "a-long-break-glass-password-1"


@dataclass
class SsoWorld:
    acme: object
    globex: object
    support: object  # Acme's department whose leads are budget owners
    engineering: object
    globex_finance: object
    acme_connection: object
    globex_connection: object
    break_glass: object  # Acme's local owner account (a password, no provider)


def build_world(provider, settings, monkeypatch) -> SsoWorld:
    settings.KT_UPSTREAM_ALLOW_HOSTS = [provider.host_port]
    acme = OrganizationFactory(name="Acme", slug="acme")
    globex = OrganizationFactory(
        name="Globex", slug="globex", env_refs_allowed=["GLOBEX_SSO_CLIENT_SECRET"]
    )
    support = DepartmentFactory(organization=acme, team_id="team_support", name="Support")
    engineering = DepartmentFactory(
        organization=acme, team_id="team_engineering", name="Engineering"
    )
    globex_finance = DepartmentFactory(
        organization=globex, team_id="team_globex_finance", name="Globex finance"
    )
    provider_secret_set(
        organization=acme, name="sso-client", value=client_secret("acme"), actor="t", via="api"
    )
    monkeypatch.setenv("GLOBEX_SSO_CLIENT_SECRET", client_secret("globex"))
    common = {
        "issuer": provider.issuer,
        "scopes": "openid email profile groups org",
        "role_map": {"kt-finance": "finance", "kt-owners": "owner"},
        "actor": "root",
        "via": "admin",
    }
    acme_connection = sso_connection_save(
        organization=acme,
        client_id=CLIENTS["acme"],
        client_secret_name="sso-client",
        department_map={"support-leads": ["team_support"]},
        required_claims={"org": "acme"},
        display_name="Acme IdP",
        **common,
    )
    globex_connection = sso_connection_save(
        organization=globex,
        client_id=CLIENTS["globex"],
        client_secret_env="GLOBEX_SSO_CLIENT_SECRET",
        required_claims={"org": "globex"},
        display_name="Globex IdP",
        listed_on_login_page=True,
        **common,
    )
    break_glass = get_user_model().objects.create_user(
        username="breakglass@acme.example",
        email="breakglass@acme.example",
        password=BREAK_GLASS_PASSWORD,
    )
    Membership.objects.create(user=break_glass, organization=acme, role=Membership.Role.OWNER)
    return SsoWorld(
        acme=acme,
        globex=globex,
        support=support,
        engineering=engineering,
        globex_finance=globex_finance,
        acme_connection=acme_connection,
        globex_connection=globex_connection,
        break_glass=break_glass,
    )


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    """The provider, its clients sending people back to Django's test client (the browser
    test module overrides it with the live server's address)."""
    started = start_provider(tmp_path_factory.mktemp("op"), [PORTAL])
    yield started
    started.stop()


@pytest.fixture
def world(db, provider, settings, monkeypatch):
    return build_world(provider, settings, monkeypatch)
