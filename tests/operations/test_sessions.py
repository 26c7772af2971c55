"""A portal sign-in lasts KT_SESSION_HOURS (12 by default): the session ends then, and the user
signs in again."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from chargeback.models import Membership
from tests.admin.conftest import PASSWORD, make_staff
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db):
    user = make_staff(OrganizationFactory(slug="acme-session"), Membership.Role.FINANCE, "alice")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def test_a_sign_in_ends_after_KT_SESSION_HOURS(alice):
    assert settings.SESSION_COOKIE_AGE == 12 * 3600
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        client = Client(REMOTE_ADDR="203.0.113.7")
        client.get("/admin/login/")
        client.post("/admin/login/", {"username": "alice", "password": PASSWORD, "next": "/admin/"})
        assert "_auth_user_id" in client.session
        assert client.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 12 * 3600

        clock.move_to(start + timedelta(hours=11, minutes=59))
        assert client.get("/admin/").status_code == 200

        clock.move_to(start + timedelta(hours=12, minutes=1))
        response = client.get("/admin/")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_KT_SESSION_HOURS_sets_the_session_length():
    code = "import django; django.setup(); from django.conf import settings; print(settings.SESSION_COOKIE_AGE)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "KT_SESSION_HOURS": "1.5"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=settings.BASE_DIR,
    )
    assert out.stdout.strip() == "5400"
