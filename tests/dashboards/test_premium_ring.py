"""The department page never contradicts itself: the premium KPI and its ring agree."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_premium_share_and_its_ring_agree_under_a_cent(engineering, events, member):
    # One premium call worth a fraction of a cent: the KPI says 100 %, so the ring must show it.
    events.add(engineering, day=3, price="big", prompt=100, completion=10)
    client = Client()
    client.force_login(member)

    page = client.get("/dashboard/departments/team_engineering/?month=2026-05").content.decode()

    premium_card = page.split("Premium-model share</h2>", 1)[1].split("</section>", 1)[0]
    assert "100 %" in page
    assert "Nothing this month." not in premium_card
