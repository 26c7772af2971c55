import threading
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection

from tests.budgets.helpers import record_spend
from wallets.models import BudgetAlert


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_requests_crossing_80_percent_send_one_email(budget, support):
    record_spend(department=support, amount="790")  # 79 %; the 50 % alert goes out now
    assert len(mail.outbox) == 1

    barrier = threading.Barrier(20)
    errors = []

    def request():
        try:
            barrier.wait(10)
            record_spend(department=support, amount="10")  # each request alone crosses 80 %
        except Exception as exc:  # noqa: BLE001 - collected: a thread's exception would go unseen
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert BudgetAlert.objects.filter(threshold=80).count() == 1
    assert BudgetAlert.objects.get(threshold=80).status == "sent"
    eighty = [m for m in mail.outbox if "80%" in m.subject]
    assert len(eighty) == 1
    assert len(mail.outbox) == 2
    # 79 % + 20 x 1 % = 99 %: no 100 % alert
    assert not BudgetAlert.objects.filter(threshold=100).exists()
    assert sum(e.cost for e in support.usage_events.all()) == Decimal("990")
