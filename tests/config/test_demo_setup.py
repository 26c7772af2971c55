import os
import socket

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from chargeback.config import config_apply
from chargeback.keys import hash_key
from chargeback.models import (
    AdminToken,
    AuditLog,
    ConsumerGroup,
    Department,
    Membership,
    Organization,
    ProviderTarget,
)
from demo.setup import banner, demo_setup, port_is_free
from tests.config.conftest import SEED_FILE, without_providers
from tests.factories import AdminTokenFactory

pytestmark = pytest.mark.django_db

SEED_CURL = (
    'curl -s -X POST "http://localhost:41002/v1/wallets/allocate" \\\n'
    '-H "Authorization: Bearer kt_admin_prod_token" \\\n'
    '-H "Content-Type: application/json" \\\n'
    '-d \'{"team_id":"team_support","amount":8000.00,"currency":"USD","description":"Support May 2026"}\''
)


def test_it_sets_up_the_demo_organization_token_login_and_seed_config():
    info = demo_setup(migrate=False, admin_password="demo-pass-for-test", seed=False)

    acme = Organization.objects.get(slug="acme")
    assert acme.name == "Acme Corp"
    assert info.organization == acme
    assert sorted(
        ConsumerGroup.objects.filter(organization=acme).values_list("name", flat=True)
    ) == [
        "engineering",
        "legal",
        "support",
    ]
    client = Client()
    response = client.post(
        "/v1/config/validate",
        data="version: '1'\n",
        content_type="text/yaml",
        HTTP_AUTHORIZATION="Bearer kt_admin_prod_token",
    )
    assert response.status_code == 200
    assert client.login(username="admin", password="demo-pass-for-test")
    membership = Membership.objects.get(user__username="admin")
    assert (membership.organization, membership.role) == (acme, "owner")
    assert client.get("/admin/").status_code == 200


def test_running_it_again_changes_nothing_but_the_printed_password():
    demo_setup(migrate=False, admin_password="first-password-1", seed=False)

    info = demo_setup(migrate=False, admin_password="second-password-2", seed=False)

    assert info.config_report.lines()[0] == "no changes"
    assert Organization.objects.count() == 1
    assert AdminToken.objects.count() == 1
    assert get_user_model().objects.get(username="admin").check_password("second-password-2")


def _rows_of(organization) -> dict:
    rows = {
        model.__name__: list(
            model.objects.filter(organization=organization).order_by("pk").values()
        )
        for model in (Department, ConsumerGroup, ProviderTarget, AdminToken, Membership, AuditLog)
    }
    rows["Organization"] = list(Organization.objects.filter(pk=organization.pk).values())
    rows["User"] = list(
        get_user_model()
        .objects.filter(membership__organization=organization)
        .order_by("pk")
        .values("username", "password", "is_staff", "is_superuser")
    )
    return rows


def test_it_leaves_an_existing_organization_that_looks_alike_as_it_was(outsider_org):
    # The outsider applies the seed's groups with keys of its own and enforcement off: the same
    # group names and team_ids as the demo, its own admin token and its own staff owner.
    text = without_providers(SEED_FILE.read_text()).replace("kt_cg_", "kt_cg_outsider_")
    text = text.replace("wallet_enforcement: true", "wallet_enforcement: false")
    config_apply(organization=outsider_org, text=text, actor="user:olga", via="config")
    AdminTokenFactory(organization=outsider_org, raw="kt_admin_outsider_token")
    olga = get_user_model().objects.create_user("olga", password="olga-password-1", is_staff=True)
    Membership.objects.create(user=olga, organization=outsider_org, role="owner")
    before = _rows_of(outsider_org)

    first = demo_setup(migrate=False, admin_password="demo-pass-for-test", seed=False)
    again = demo_setup(migrate=False, admin_password="demo-pass-again-2", seed=False)

    assert _rows_of(outsider_org) == before
    acme = first.organization
    assert (acme.slug, again.organization) == ("acme", acme)
    assert acme.wallet_enforcement is True
    assert sorted(
        ConsumerGroup.objects.filter(organization=acme).values_list("name", flat=True)
    ) == ["engineering", "legal", "support"]
    assert AdminToken.objects.get(token_hash=hash_key("kt_admin_prod_token")).organization == acme
    assert Client().login(username="olga", password="olga-password-1")


def test_the_banner_prints_the_login_and_the_seeds_curl_commands_verbatim():
    info = demo_setup(migrate=False, admin_password="pw-in-banner-123", seed=False)

    text = banner(info, port=41002, fake_url="")

    assert SEED_CURL in text
    assert "admin / pw-in-banner-123" in text
    assert "http://localhost:41002/admin/" in text
    assert "DEMO ONLY" in text


def test_demo_run_setup_only_migrates_and_prepares_without_serving(capsys):
    call_command("demo_run", "--setup-only", "--port", "41999")

    out = capsys.readouterr().out
    assert "demo: migrating the database" in out
    assert "is set up for http://localhost:41999" in out
    assert Organization.objects.filter(slug="acme").exists()


def test_it_knows_a_busy_port_from_a_free_one():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_is_free("127.0.0.1", port) is False
    assert port_is_free("127.0.0.1", port) is True


def test_it_does_not_take_over_another_organizations_staff_user_named_admin(outsider_org):
    # "admin" is the first name anyone gives a staff login; in another organization it is theirs.
    theirs = get_user_model().objects.create_user(
        "admin", password="their-own-password-1", is_staff=True
    )
    Membership.objects.create(user=theirs, organization=outsider_org, role="owner")
    before = _rows_of(outsider_org)

    info = demo_setup(migrate=False, admin_password="demo-pass-for-test", seed=False)

    assert info.admin_username == "admin-2"  # the demo's own login, printed by its banner
    assert get_user_model().objects.get(username="admin-2").check_password("demo-pass-for-test")
    assert _rows_of(outsider_org) == before
    theirs.refresh_from_db()
    assert theirs.membership.organization == outsider_org
    assert theirs.is_superuser is False
    assert theirs.check_password("their-own-password-1")


def test_email_links_follow_the_port_the_demo_runs_on(monkeypatch, settings, capsys):
    from budgets.selectors import dashboard_url

    monkeypatch.delenv("SITE_URL", raising=False)
    settings.SITE_URL = "http://localhost:41002"  # restored after the test

    call_command("demo_run", "--setup-only", "--port", "41302")

    assert settings.SITE_URL == "http://localhost:41302"
    assert os.environ["SITE_URL"] == "http://localhost:41302"  # the server it starts too
    engineering = Department.objects.get(organization__slug="acme", team_id="team_engineering")
    assert dashboard_url(department=engineering) == (
        "http://localhost:41302/dashboard/departments/team_engineering/"
    )


def test_a_site_url_set_by_the_operator_is_kept(monkeypatch, settings):
    monkeypatch.setenv("SITE_URL", "https://chargeback.example.com")
    settings.SITE_URL = "https://chargeback.example.com"

    call_command("demo_run", "--setup-only", "--port", "41302")

    assert settings.SITE_URL == "https://chargeback.example.com"
    assert os.environ["SITE_URL"] == "https://chargeback.example.com"
