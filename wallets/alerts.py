"""Hook the gateway calls after a capture commits: spend changed for this department/wallet.

It must stay cheap, it runs once per gateway request: per budget of the department one spend
aggregate (an index range scan on event_dept_time) and one look at this period's alerts; for
the wallet one read and one look at its last allocation. Rows and emails only happen when a
threshold is crossed or the wallet changes state. It never raises: an alerting problem must not
fail a request that was served and charged, and the hourly evaluation catches whatever was missed.
"""

import logging

from wallets.budgets import evaluation

logger = logging.getLogger(__name__)


def spend_recorded(
    *, organization_id: int, department_id: int | None, wallet_id: int | None
) -> None:
    """Called by the gateway after each capture has committed (transaction.on_commit)."""
    try:
        if department_id is not None:
            evaluation.department_spend_recorded(
                organization_id=organization_id, department_id=department_id
            )
        if wallet_id is not None:
            evaluation.wallet_spend_recorded(wallet_id=wallet_id)
    except Exception:  # see the module docstring
        logger.exception(
            "budget/wallet alert check failed (org %s, department %s, wallet %s)",
            organization_id,
            department_id,
            wallet_id,
        )
