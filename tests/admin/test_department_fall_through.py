"""The department form's Fall through box (wallets/cascade.py): unticked, the department is
strict; the change goes through the department service and is audited."""

import pytest
from django.urls import reverse

from chargeback.models import AuditLog, Membership
from tests.admin.conftest import make_staff
from tests.factories import DepartmentFactory, OrganizationFactory


@pytest.mark.django_db
def test_an_owner_makes_a_department_strict_from_its_form(client):
    org = OrganizationFactory(name="Shop", slug="shop")
    department = DepartmentFactory(organization=org, team_id="team_legal", name="Legal")
    rival = DepartmentFactory(organization=OrganizationFactory(slug="rival"), team_id="team_legal")
    client.force_login(make_staff(org, Membership.Role.OWNER, "shop_owner"))
    url = reverse("admin:chargeback_department_change", args=[department.pk])

    page = client.get(url)
    assert 'name="fall_through"' in page.content.decode()
    response = client.post(url, {"name": "Legal", "owner_emails": "[]"})  # box left unticked

    assert response.status_code == 302, response.content.decode()[:2000]
    department.refresh_from_db()
    assert department.fall_through is False
    audit = AuditLog.objects.get(organization=org, action="department.update")
    assert (audit.before["fall_through"], audit.after["fall_through"]) == (True, False)
    assert audit.via == "admin"
    rival.refresh_from_db()
    assert rival.fall_through is True
    # The rival's department is not even reachable from the shop's admin.
    other = reverse("admin:chargeback_department_change", args=[rival.pk])
    assert client.post(other, {"name": "x", "owner_emails": "[]"}).status_code in (302, 404)
    rival.refresh_from_db()
    assert rival.name != "x"
