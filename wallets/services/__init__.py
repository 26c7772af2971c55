"""Everything that moves money, each function stating what it guarantees.

- `wallets`: the wallets themselves (found or created on first use) and their settings;
- `funding`: the entries outside requests that add or remove funds (credit, adjust);
- `transfers`: allocate and reclaim, which move funds between wallets;
- `refunds`: money given back for one charged call;
- `holds`: the gateway's hot path (place on the first wallet of the cascade that can pay,
  capture, release, expire).
"""

from wallets.services.funding import wallet_adjust, wallet_credit
from wallets.services.holds import (
    hold_capture,
    hold_capture_late,
    hold_place,
    hold_place_cascade,
    hold_raise,
    hold_release,
    hold_reserve,
    holds_expire,
)
from wallets.services.refunds import wallet_refund
from wallets.services.transfers import wallet_allocate, wallet_reclaim
from wallets.services.wallets import (
    wallet_for_organization,
    wallet_for_team,
    wallet_for_user,
    wallet_update,
)

__all__ = [
    "hold_capture",
    "hold_capture_late",
    "hold_place",
    "hold_place_cascade",
    "hold_raise",
    "hold_release",
    "hold_reserve",
    "holds_expire",
    "wallet_adjust",
    "wallet_allocate",
    "wallet_credit",
    "wallet_for_organization",
    "wallet_for_team",
    "wallet_for_user",
    "wallet_reclaim",
    "wallet_refund",
    "wallet_update",
]
