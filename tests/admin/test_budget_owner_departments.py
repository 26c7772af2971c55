"""A budget owner owns at least one department: a membership without any is refused, in the
service (every writer: admin, single sign-on) and on the admin's form, with a clear message."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from chargeback.errors import ApplicationError
from chargeback.models import Membership
from chargeback.services import membership_save

pytestmark = pytest.mark.django_db

REFUSAL = "a budget owner owns at least one department: choose the departments they may see"


def test_the_service_refuses_a_budget_owner_of_no_department(acme):
    user = get_user_model().objects.create_user(username="newcomer")

    with pytest.raises(ApplicationError) as refused:
        membership_save(
            organization=acme.org, user=user, role="budget_owner", departments=[],
            actor="test", via="api",
        )  # fmt: skip

    assert refused.value.field_errors() == {"departments": [REFUSAL]}
    assert not Membership.objects.filter(user=user).exists()
    owner = membership_save(
        organization=acme.org, user=user, role="budget_owner", departments=[acme.owned],
        actor="test", via="api",
    )  # fmt: skip
    assert list(owner.departments.all()) == [acme.owned]


def test_the_admin_form_says_so_and_keeps_the_membership_as_it_was(acme, login):
    member = acme.users["budget_owner"]
    client = login(acme.users["owner"])

    response = client.post(
        reverse("admin:chargeback_membership_change", args=[member.membership.pk]),
        {"organization": acme.org.pk, "role": "budget_owner", "departments": []},
    )

    assert response.status_code == 200  # the form again, with the error
    assert "Traceback" not in response.content.decode()
    assert response.context["adminform"].form.errors["departments"] == [REFUSAL]
    assert list(member.membership.departments.all()) == [acme.owned]
    viewer = acme.users["viewer"]
    made_owner = client.post(
        reverse("admin:chargeback_membership_change", args=[viewer.membership.pk]),
        {"organization": acme.org.pk, "role": "budget_owner", "departments": []},
    )
    assert made_owner.status_code == 200
    viewer.membership.refresh_from_db()
    assert viewer.membership.role == "viewer"
