"""An organization's single sign-on connection: what its service refuses before writing, who
may change it in the admin (owners: its mapping decides who becomes staff with which role), and
that another organization's connection or secret is out of reach."""

import pytest
from django.urls import reverse

from chargeback.errors import ApplicationError, Conflict
from chargeback.models import AuditLog, Membership
from chargeback.provider_secrets import provider_secret_delete, provider_secret_set
from sso.connections import sso_connection_delete, sso_connection_save
from sso.models import SsoConnection
from tests.admin.conftest import make_staff
from tests.factories import DepartmentFactory, OrganizationFactory

ISSUER = "https://login.acme.example"


@pytest.fixture
def acme(db):
    org = OrganizationFactory(name="Acme", slug="acme", env_refs_allowed=["ACME_SSO_*"])
    DepartmentFactory(organization=org, team_id="team_support")
    provider_secret_set(
        organization=org, name="sso-client", value="client-secret-0123456789", actor="t", via="t"
    )
    return org


@pytest.fixture
def outsider(db):
    org = OrganizationFactory(name="Outsider", slug="outsider")
    DepartmentFactory(organization=org, team_id="team_outsider")
    provider_secret_set(
        organization=org, name="outsider-sso", value="outsider-secret-0123456", actor="t", via="t"
    )
    return org


def save(org, **changes):
    fields = {"issuer": ISSUER, "client_id": "acme-portal", "client_secret_name": "sso-client"}
    return sso_connection_save(
        organization=org, actor="owner", via="admin", **{**fields, **changes}
    )


def refused(org, **changes) -> dict:
    with pytest.raises(ApplicationError) as caught:
        save(org, **changes)
    assert not SsoConnection.objects.filter(organization=org).exists()
    return caught.value.field_errors()


def test_a_connection_is_saved_and_audited_without_its_secret(acme):
    connection = save(acme, role_map={"kt-finance": "finance"})

    row = AuditLog.objects.get(action="sso_connection.create")
    assert row.after["client_secret"] == "sso-client"  # where it lives, never the value
    assert "client-secret-0123456789" not in str(row.after)
    assert connection.client_secret.name == "sso-client"
    save(acme, role_map={"kt-finance": "finance"})  # the same again: no change, no row
    assert AuditLog.objects.filter(action__startswith="sso_connection").count() == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"issuer": "http://169.254.169.254/latest/meta-data"}, "issuer"),  # cloud metadata
        ({"issuer": "https://127.0.0.1/realms/acme"}, "issuer"),
        ({"issuer": "http://login.acme.example"}, "issuer"),  # plain http
        ({"issuer": "login.acme.example"}, "issuer"),
        ({"client_id": " "}, "client_id"),
        ({"client_secret_name": ""}, "client_secret"),
        ({"client_secret_name": "nope"}, "client_secret"),
        ({"client_secret_name": "", "client_secret_env": "SECRET_KEY"}, "client_secret_env"),
        ({"client_secret_name": "", "client_secret_env": "OTHER_SECRET"}, "client_secret_env"),
        ({"scopes": "email profile"}, "scopes"),
        ({"role_map": {"kt-finance": "emperor"}}, "role_map"),
        ({"role_map": ["finance"]}, "role_map"),
        ({"department_map": {"leads": ["team_nowhere"]}}, "department_map"),
        ({"department_map": {"leads": "team_outsider"}}, "department_map"),
        ({"default_role": "superuser"}, "default_role"),
        ({"required_claims": {"hd": 3}}, "required_claims"),
    ],
)
def test_a_bad_connection_is_refused_naming_the_field(acme, outsider, changes, field):
    assert field in refused(acme, **changes)


def test_another_organizations_secret_is_not_a_choice(acme, outsider):
    assert "client_secret" in refused(acme, client_secret_name="outsider-sso")


def test_an_allowed_variable_is_accepted(acme):
    connection = save(acme, client_secret_name="", client_secret_env="ACME_SSO_SECRET")

    assert connection.client_secret_env == "ACME_SSO_SECRET"
    assert connection.client_secret is None


def test_a_secret_used_by_single_sign_on_cannot_be_deleted(acme):
    connection = save(acme)

    with pytest.raises(Conflict, match="single sign-on connection"):
        provider_secret_delete(secret=connection.client_secret, actor="owner", via="api")
    connection.refresh_from_db()
    assert connection.client_secret.name == "sso-client"
    assert not AuditLog.objects.filter(action="provider_secret.delete").exists()

    sso_connection_delete(connection=connection, actor="owner", via="admin")
    provider_secret_delete(secret=acme.provider_secrets.get(), actor="owner", via="api")


def test_only_owners_change_it_in_the_admin_and_never_another_organizations(acme, outsider, client):
    connection = save(acme)
    other = sso_connection_save(
        organization=outsider,
        issuer="https://login.outsider.example",
        client_id="outsider-portal",
        client_secret_name="outsider-sso",
        actor="t",
        via="t",
    )
    change = reverse("admin:sso_ssoconnection_change", args=[connection.pk])
    for role, can_read, can_change in [
        (Membership.Role.OWNER, True, True),
        (Membership.Role.ADMIN, True, False),  # could otherwise grant itself owner
        (Membership.Role.FINANCE, True, False),
        (Membership.Role.BUDGET_OWNER, False, False),  # outside their departments: no such row
    ]:
        client.force_login(make_staff(acme, role, f"acme-{role}"))
        page = client.get(change)
        assert page.status_code == (200 if can_read else 404), role
        if can_read:
            assert ('name="issuer"' in page.content.decode()) == can_change, role
        other_page = client.get(reverse("admin:sso_ssoconnection_change", args=[other.pk]))
        assert other_page.status_code == 404, role
        listing = client.get(reverse("admin:sso_ssoconnection_changelist"))
        assert b"outsider" not in listing.content.lower()


def test_an_organization_has_one_connection(acme, client):
    save(acme)
    client.force_login(make_staff(acme, Membership.Role.OWNER, "acme-owner"))

    page = client.post(
        reverse("admin:sso_ssoconnection_add"),
        {
            "organization": str(acme.pk),
            "enabled": "on",
            "display_name": "second",
            "issuer": "https://login2.acme.example",
            "client_id": "other",
            "client_secret": str(acme.provider_secrets.get().pk),
            "scopes": "openid",
            "role_map": "{}",
            "department_map": "{}",
            "required_claims": "{}",
        },
    )

    assert page.status_code == 200
    assert "has its single sign-on connection already" in page.content.decode()
    assert SsoConnection.objects.get(organization=acme).issuer == ISSUER
