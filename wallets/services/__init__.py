"""Everything that moves money, each function stating what it guarantees.

- `funding`: wallets and the entries outside requests (allocate, credit, reclaim, adjust, refund);
- `holds`: the gateway's hot path (place, capture, release, expire) and the effective wallet.
"""

from wallets.services.funding import (
    wallet_adjust,
    wallet_allocate,
    wallet_credit,
    wallet_for_organization,
    wallet_for_team,
    wallet_for_user,
    wallet_reclaim,
    wallet_refund,
)
from wallets.services.holds import (
    effective_wallet,
    hold_capture,
    hold_capture_late,
    hold_place,
    hold_release,
    holds_expire,
)

__all__ = [
    "effective_wallet",
    "hold_capture",
    "hold_capture_late",
    "hold_place",
    "hold_release",
    "holds_expire",
    "wallet_adjust",
    "wallet_allocate",
    "wallet_credit",
    "wallet_for_organization",
    "wallet_for_team",
    "wallet_for_user",
    "wallet_reclaim",
    "wallet_refund",
]
