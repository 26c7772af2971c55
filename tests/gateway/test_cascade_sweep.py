"""An expired hold that the cascade placed on the organization's wallet: the sweeper's
placeholder event is attributed to the caller's department (recorded on the hold), not to the
wallet's (the organization's has none). Both paths: the one statement and the ORM."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from gateway.models import UsageEvent
from gateway.sweep import holds_sweep
from tests.factories import DepartmentFactory
from wallets import services
from wallets.cascade import wallet_chain
from wallets.models import Hold

PLACE = {"reserve": services.hold_reserve, "orm": services.hold_place_cascade}


@pytest.mark.django_db
@pytest.mark.parametrize("place", PLACE)
def test_the_placeholder_of_an_organization_paid_hold_names_the_callers_department(
    org, engineering, outsider_org, place
):
    services.wallet_for_team(department=engineering)  # empty: the organization pays
    services.wallet_credit(organization=org, amount=Decimal("5"), currency="USD")
    theirs = DepartmentFactory(organization=outsider_org, team_id="team_engineering")
    services.wallet_credit(organization=outsider_org, amount=Decimal("5"), currency="USD")
    for department, request_id in ((engineering, "req_ours"), (theirs, "req_theirs")):
        chain = wallet_chain(organization=department.organization, department=department)
        assert [w.scope for w in chain][-1] == "organization"
        PLACE[place](
            wallets=chain,
            amount=Decimal("1"),
            request_id=request_id,
            department_id=department.pk,
        )
    Hold.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert holds_sweep() == 2

    ours = UsageEvent.objects.get(request_id="req_ours")
    assert (ours.status, ours.department_id, ours.organization_id) == (
        "expired",
        engineering.pk,
        org.pk,
    )
    assert ours.wallet.scope == "organization"
    assert UsageEvent.objects.get(request_id="req_theirs").department_id == theirs.pk
