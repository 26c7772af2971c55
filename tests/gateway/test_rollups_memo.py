"""Within rollups_memo() (a spend API call, a department page) the same rollup question is
answered by one read: the page asks for its month's totals and its per-user figures under
several names. The answers are the same as without it."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chargeback.periods import month_end
from gateway.rollups import rollups_fold, rollups_memo
from gateway.selectors import cache_saved_total, spend_by, spend_total
from reports.dashboards.selectors import repeats_by
from tests.admin.conftest import make_event
from tests.factories import ConsumerGroupFactory, DepartmentFactory, OrganizationFactory

pytestmark = pytest.mark.django_db


def _reads(scope) -> tuple[list, int]:
    with CaptureQueriesContext(connection) as queries:
        answers = [
            spend_total(**scope),
            cache_saved_total(**scope),
            spend_by(field="user", **scope),
            repeats_by(field="user", **scope),
        ]
    return answers, len(queries)


def test_one_read_per_question_inside_the_memo_and_the_same_answers():
    org = OrganizationFactory()
    dept = DepartmentFactory(organization=org)
    ConsumerGroupFactory(organization=org, department=dept)
    for n, cost in enumerate(("0.10", "0.25", "1.00")):
        make_event(org, dept, marker=f"m{n % 2}", cost=cost, prompt_fingerprint="same")
    rollups_fold()
    month = timezone.now().date().replace(day=1)
    scope = {"organization": org, "date_from": month, "date_to": month_end(month)}
    plain, plain_queries = _reads(scope)
    with rollups_memo():
        memoised, memo_queries = _reads(scope)
    assert memoised == plain
    assert plain[0] == Decimal("1.35")
    # totals: one question asked twice; by user: one question asked by spend_by and repeats_by
    assert memo_queries < plain_queries
    assert plain_queries - memo_queries == 4  # each question reads its rollup rows and deltas
