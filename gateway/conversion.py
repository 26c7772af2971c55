"""A gateway request priced in another currency than its wallet's (`gateway.proxy.Call`, a
mixin: it reads the call's price, wallet and context).

Prices stay in the catalog's currency; the wallet spends in its own (the organization's). When
the two differ, the hold's worst case and the capture are converted at the rate in force when
the request is priced (gateway/exchange.py, cached: no query per request), one rounding
(chargeback.money.convert), and the event records the price-currency cost, the rate and the
wallet-currency cost. The common path (same currency) compares two strings and does nothing
else. A missing rate refuses the request with 400 `exchange_rate_missing` before anything is
held, while the organization enforces its wallets; without enforcement the cost is recorded
unconverted (no rate stored), as before currencies existed, and a warning is logged.
"""

import logging
from decimal import Decimal

from django.utils import timezone

from chargeback.money import convert
from gateway.errors import GatewayError
from gateway.exchange import rate_for

log = logging.getLogger(__name__)
_warned: set[tuple] = set()


class Converting:
    # Filled by `finish` when the cost was converted: (price currency, price-currency cost,
    # rate, wallet currency); None on the common path.
    conversion: tuple | None = None
    _rates: dict | None = None

    def wallet_currency(self) -> str | None:
        wallet = self.wallet
        if wallet is not None:
            return wallet.currency
        ctx = self.ctx
        return ctx.currency if ctx is not None else None

    def rate_of(self, price, *, strict: bool = True) -> Decimal | None:
        """Wallet units per unit of `price`'s currency for this request (looked up once per
        currency, then kept: the hold and the capture use the same rate); None when the
        currencies are the same, or (not `strict`, or no enforcement) no rate is in force."""
        wallet_currency = self.wallet_currency()
        if price is None or wallet_currency is None or price.currency == wallet_currency:
            return None
        rates = self._rates
        if rates is None:
            rates = self._rates = {}
        key = (price.currency, wallet_currency)
        if key in rates:
            return rates[key]
        ctx = self.ctx
        rate = rate_for(
            organization_id=ctx.organization_id,
            source=price.currency,
            target=wallet_currency,
            at=timezone.now(),
        )
        if rate is None:
            if strict and ctx.cost_tracking and ctx.enforcement:
                raise GatewayError(
                    400,
                    f"No exchange rate from {price.currency} to {wallet_currency} is in force: "
                    f"the model {price.model} is priced in {price.currency} and the wallet "
                    f"spends {wallet_currency}. An administrator adds one in the admin or with "
                    "POST /v1/admin/exchange-rates.",
                    type="invalid_request_error",
                    code="exchange_rate_missing",
                )
            warned = (ctx.organization_id, *key)
            if warned not in _warned:  # once per process and pair: not a line per request
                _warned.add(warned)
                log.warning(
                    "organization %s: no %s->%s exchange rate; costs recorded unconverted",
                    ctx.organization_id,
                    price.currency,
                    wallet_currency,
                )
            return None  # not kept: the next lookup may find a rate added since
        rates[key] = rate
        return rate

    def to_wallet(self, amount: Decimal, price, *, strict: bool = False) -> Decimal:
        """`amount` priced at `price`, in the wallet's currency."""
        rate = self.rate_of(price, strict=strict)
        return amount if rate is None else convert(amount, rate)

    def convert_cost(self) -> None:
        """`self.cost` (priced at `self.price`) into the wallet's currency, remembering the
        figures the event stores. Never raises: the hold already looked the rate up."""
        self.conversion = None
        price = getattr(self, "price", None)
        rate = self.rate_of(price, strict=False)
        if rate is None:
            return
        price_cost = self.cost
        self.cost = convert(price_cost, rate)
        self.conversion = (price.currency, price_cost, rate, self.wallet_currency())

    def conversion_fields(self, fields: dict) -> dict:
        if self.conversion is not None:
            price_currency, price_cost, rate, wallet_currency = self.conversion
            fields["currency"] = wallet_currency
            fields["price_currency"] = price_currency
            fields["price_cost"] = price_cost
            fields["exchange_rate"] = rate
        return fields
