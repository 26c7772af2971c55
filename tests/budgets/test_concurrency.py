import threading
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection

from budgets.models import BudgetAlert
from tests.budgets.conftest import mail_to
from tests.budgets.helpers import record_spend


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_requests_crossing_80_percent_send_one_email_per_organization(
    budget, support, outsider_budget, outsider_support
):
    record_spend(department=support, amount="790")  # 79 %; the 50 % alert goes out now
    assert len(mail.outbox) == 1
    # The outsider's Support (same team_id) races at the same time from 79 % of its own budget:
    # together they would be far past 100 % from the first request on.
    record_spend(department=outsider_support, amount="790")
    assert len(mail.outbox) == 2

    requests = [support] * 20 + [outsider_support] * 10
    barrier = threading.Barrier(len(requests))
    errors = []

    def request(department):
        try:
            barrier.wait(10)
            record_spend(department=department, amount="10")  # each request alone crosses 80 %
        except Exception as exc:  # noqa: BLE001 - collected: a thread's exception would go unseen
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(d,)) for d in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    ours = BudgetAlert.objects.filter(budget=budget)
    assert ours.filter(threshold=80).count() == 1
    assert ours.get(threshold=80).status == "sent"
    eighty = [m for m in mail_to("lead@example.com") if "80%" in m.subject]
    assert len(eighty) == 1
    assert len(mail_to("lead@example.com")) == 2
    # 79 % + 20 x 1 % = 99 %: no 100 % alert
    assert not ours.filter(threshold=100).exists()
    assert sum(e.cost for e in support.usage_events.all()) == Decimal("990")
    # The outsider's budget saw its own 79 % + 10 x 1 %: one 80 % email, to its own owner.
    theirs = BudgetAlert.objects.filter(budget=outsider_budget)
    assert sorted(theirs.values_list("threshold", flat=True)) == [50, 80]
    assert theirs.get(threshold=80).status == "sent"
    assert len([m for m in mail_to("lead@outsider.example") if "80%" in m.subject]) == 1
    assert len(mail.outbox) == 4
