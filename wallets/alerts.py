"""Hook the gateway calls after a capture commits: spend changed for this department/wallet.

The budgets work fills this in (threshold and wallet-state checks that enqueue alert tasks). It
must stay cheap: it runs once per gateway request.
"""


def spend_recorded(
    *, organization_id: int, department_id: int | None, wallet_id: int | None
) -> None:
    """Called by the gateway after each capture has committed."""
