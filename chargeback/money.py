"""The one place that says how money is stored and rounded.

Amounts (ledger, holds, event costs) are Decimals with 8 places: one LLM call can cost a
millionth of a dollar, so cents would round real spend away. Prices per million tokens keep 6
places. Every rounding uses ROUND_HALF_UP. A cost priced in another currency than the wallet's is
converted once (`convert`): the price-currency cost at 8 places times the exchange rate (10
places), rounded half up to 8 places; both figures and the rate are stored. Totals are summed at full precision first and rounded
to cents only for display (`to_cents`), so the admin, dashboards and exports agree to the cent.
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import models

AMOUNT_PLACES = 8
AMOUNT_DIGITS = 20
PRICE_PLACES = 6
PRICE_DIGITS = 14
ROUNDING = ROUND_HALF_UP
ZERO = Decimal("0")
CENT = Decimal("0.01")
_AMOUNT_QUANTUM = Decimal(1).scaleb(-AMOUNT_PLACES)
HALF_UNIT = _AMOUNT_QUANTUM / 2  # half the smallest amount: slack for float comparisons
MAX_AMOUNT = Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES)  # what an AmountField can hold
TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)
RATE_PLACES = 10
RATE_DIGITS = 20
MAX_RATE = Decimal(10) ** (RATE_DIGITS - RATE_PLACES)

# ISO 4217 codes we accept. Pricing is in USD; a wallet spends in its own currency.
CURRENCIES = frozenset(
    {"USD", "EUR", "GBP", "CHF", "JPY", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "INR", "SGD"}
)


def quantize(value) -> Decimal:
    """An amount at storage precision (8 places, half up)."""
    return Decimal(value).quantize(_AMOUNT_QUANTUM, rounding=ROUNDING)


def exact_sum(value) -> Decimal | None:
    """A sum of amounts as the database returned it, made exact: at storage precision (8
    places, the one rounding rule). Every stored amount has at most 8 places, so their exact sum
    does too; SQLite sums decimals as floats (52800.0000000002, 7300.00000000001), and this
    rounds that artefact away and nothing else (exact up to 15 significant digits on SQLite,
    i.e. totals below 10 million at 8 places; PostgreSQL sums exactly in any case). AmountField
    applies it to every value it reads, aggregates included; call it for a sum read otherwise."""
    if value is None:
        return None
    if isinstance(value, float):
        value = Decimal(repr(value))
    return quantize(value)


def convert(amount, rate) -> Decimal:
    """`amount` (a cost at storage precision, in the price's currency) in the wallet's currency
    at `rate` (wallet units per price unit): multiplied exactly, rounded once (8 places, half
    up). Anyone can recompute an event's `cost` from its `price_cost` and `exchange_rate`."""
    return quantize(Decimal(amount) * Decimal(rate))


def rate_problem(value: Decimal) -> str | None:
    """Why `value` cannot be an exchange rate (None: it can)."""
    if not value.is_finite():
        return "must be a number"
    if value <= ZERO:
        return "must be greater than zero"
    if value >= MAX_RATE:
        return f"must be less than {MAX_RATE:,.0f}"
    if value.quantize(Decimal(1).scaleb(-RATE_PLACES), rounding=ROUNDING) != value:
        return f"at most {RATE_PLACES} decimal places"
    return None


def to_cents(value) -> Decimal:
    """A total as shown to people: 2 places, half up. Sum first, then call this."""
    return Decimal(value or 0).quantize(CENT, rounding=ROUNDING)


def amount_problem(value: Decimal) -> str | None:
    """Why `value` cannot be an amount of money to add, allocate or budget (None: it can).
    The one rule for every amount a person types: API, admin, config file, CLI."""
    if not value.is_finite():
        return "must be a number"
    if value <= ZERO:
        return "must be greater than zero"
    if value >= MAX_AMOUNT:
        return f"must be less than {MAX_AMOUNT:,.0f}"
    if quantize(value) != value:
        return f"at most {AMOUNT_PLACES} decimal places"
    return None


def exact_str(value) -> str | None:
    """An exact amount as people read it, nothing rounded away: at least 2 places, at most the
    8 stored (20000 -> "20000.00", 0.000123 -> "0.000123")."""
    if value is None:
        return None
    value = Decimal(value)
    places = max(2, -value.normalize().as_tuple().exponent)
    return f"{value:.{places}f}"


def storage_str(value) -> str:
    """An amount as the gateway's headers give it: plain digits at storage precision, 8 places,
    never Decimal's exponent form (0 -> "0.00000000", not "0E-8"). "" for None."""
    return "" if value is None else f"{quantize(value):f}"


def parse_amount(value) -> Decimal:
    """A user-supplied amount as a Decimal, never via float. Raises ValueError."""
    if isinstance(value, bool) or value is None:
        raise ValueError("amount must be a number")
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError("amount must be a number") from exc
    if not amount.is_finite():
        raise ValueError("amount must be a finite number")
    return amount


def token_cost(tokens: int, price_per_million: Decimal) -> Decimal:
    """Exact cost of `tokens` at a per-million price, unrounded (round the sum, not the parts)."""
    if tokens <= 0 or not price_per_million:
        return ZERO
    return Decimal(tokens) * price_per_million / TOKENS_PER_PRICE_UNIT


class AmountField(models.DecimalField):
    """Wallet and event money: 20 digits, 8 places. Whatever reads as an AmountField (a column,
    or a Sum / Coalesce / Subquery with `output_field=AmountField()`) comes back exact at 8
    places on every backend (`exact_sum`)."""

    def from_db_value(self, value, expression, connection):
        return exact_sum(value)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", AMOUNT_DIGITS)
        kwargs.setdefault("decimal_places", AMOUNT_PLACES)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "chargeback.money.AmountField", args, kwargs


class PriceField(models.DecimalField):
    """A price per million tokens: 14 digits, 6 places."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", PRICE_DIGITS)
        kwargs.setdefault("decimal_places", PRICE_PLACES)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "chargeback.money.PriceField", args, kwargs


class RateField(models.DecimalField):
    """An exchange rate: 20 digits, 10 places."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", RATE_DIGITS)
        kwargs.setdefault("decimal_places", RATE_PLACES)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "chargeback.money.RateField", args, kwargs
