"""Hook the gateway calls after a capture commits: spend changed for this department/wallet.

It runs once per gateway request, so it does no database work itself: it claims a short
per-department/wallet window in the cache (one SET NX) and, when the window was free, enqueues one
`budgets.check_spend` task that runs after the window (`countdown`), so a burst of requests costs
one check that sees all of them. Exactly once still comes from the alert rows' unique keys, and the
hourly evaluation catches anything a window missed. It never raises: an alerting problem must not
fail a request that was served and charged.
"""

import logging

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


def spend_recorded(
    *, organization_id: int, department_id: int | None, wallet_id: int | None
) -> None:
    """Called by the gateway after each capture has committed (transaction.on_commit)."""
    from wallets.budgets.tasks import check_spend

    window = settings.KT_BUDGET_CHECK_SECONDS
    try:
        key = f"kt:spend-check:{organization_id}:{department_id}:{wallet_id}"
        if window > 0 and not cache.add(key, 1, timeout=window):
            return  # a check covering this request is already queued
        check_spend.apply_async(
            kwargs={
                "organization_id": organization_id,
                "department_id": department_id,
                "wallet_id": wallet_id,
            },
            countdown=window,
        )
    except Exception:  # see the module docstring
        logger.exception(
            "budget/wallet alert check failed (org %s, department %s, wallet %s)",
            organization_id,
            department_id,
            wallet_id,
        )
