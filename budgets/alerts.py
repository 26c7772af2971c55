"""What budgets do when the gateway says spend was recorded (gateway/hooks.py, registered in
BudgetsConfig.ready): spend changed for this department/wallet.

It runs once per gateway request, so it does no database or network work in the common case: it
claims a short per-department/wallet window in this process's memory and, only when the window
was free, enqueues one `budgets.check_spend` task that runs after the window (`countdown`), so a
burst of requests costs one check that sees all of them. Each server process checks on its own
(a few processes = a few checks per window); the check is idempotent, exactly once comes from the
alert rows' unique keys, and the hourly evaluation catches anything a window missed. It never
raises: an alerting problem must not fail a request that was served and charged.
"""

import logging
import threading
import time

from django.conf import settings

from budgets.tasks import check_spend

logger = logging.getLogger(__name__)

_windows: dict[tuple, float] = {}  # (org, department, wallet) -> monotonic time the window ends
_lock = threading.Lock()


def _claim_window(key: tuple, seconds: float) -> bool:
    """True when no window is open for `key` in this process (and opens one)."""
    now = time.monotonic()
    with _lock:
        if _windows.get(key, 0.0) > now:
            return False
        if len(_windows) > 10_000:  # forget closed windows now and then
            for stale in [k for k, end in _windows.items() if end <= now]:
                del _windows[stale]
        _windows[key] = now + seconds
        return True


def spend_recorded(
    *, organization_id: int, department_id: int | None, wallet_id: int | None
) -> None:
    """Registered on the gateway's spend-recorded hook (gateway/hooks.py): runs after each
    capture has committed."""
    window = settings.KT_BUDGET_CHECK_SECONDS
    try:
        if window > 0 and not _claim_window((organization_id, department_id, wallet_id), window):
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


def windows_clear() -> None:
    """Forget every open window (tests)."""
    with _lock:
        _windows.clear()
