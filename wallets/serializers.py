"""Money in and out of the management API.

In: an amount may be a JSON number (`20000.00`, as in the seed's curl) or a string
(`"20000.00"`). The wallet views parse JSON numbers straight to Decimal (`DecimalJSONParser`),
so no amount ever passes through a float.

Out: every amount is an exact decimal string with at least 2 and at most 8 places:
`"20000.00"`, `"12.50"`, `"0.000123"`. Nothing is rounded away (a single call can cost a
millionth of a dollar), yet balances read like money. Round half-up to cents for display.
"""

import json
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError

from chargeback.money import (
    AMOUNT_DIGITS,
    AMOUNT_PLACES,
    CURRENCIES,
    ZERO,
    exact_str,
    parse_amount,
)

MAX_AMOUNT = Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES)


class DecimalJSONParser(parsers.JSONParser):
    """JSON with numbers parsed as Decimal (never float); NaN and Infinity refused."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", "utf-8")
        try:
            return json.loads(
                stream.read().decode(encoding),
                parse_float=Decimal,
                parse_constant=_refuse_constant,
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number")


@extend_schema_field({"type": "string", "format": "decimal", "example": "20000.00"})
class MoneyField(serializers.Field):
    """Read-only money: an exact decimal string (see module docstring)."""

    def __init__(self, **kwargs):
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value):
        return exact_str(value)


@extend_schema_field(
    {
        "oneOf": [{"type": "number"}, {"type": "string", "format": "decimal"}],
        "example": 20000.00,
        "description": "greater than zero, at most 8 decimal places",
    }
)
class AmountInputField(serializers.Field):
    """A positive amount as a JSON number or string, parsed with chargeback.money.parse_amount."""

    default_error_messages = {
        "invalid": 'amount must be a number, e.g. 20000.00 or "20000.00"',
        "positive": "amount must be greater than zero",
        "places": f"amount has more than {AMOUNT_PLACES} decimal places",
        "too_large": f"amount must be below {MAX_AMOUNT}",
    }

    def to_internal_value(self, data):
        if isinstance(data, list | dict):
            self.fail("invalid")
        try:
            amount = parse_amount(data.strip() if isinstance(data, str) else data)
        except ValueError:
            self.fail("invalid")
        if amount <= ZERO:
            self.fail("positive")
        if amount >= MAX_AMOUNT:
            self.fail("too_large")
        if amount != amount.quantize(Decimal(1).scaleb(-AMOUNT_PLACES)):
            self.fail("places")
        return amount

    def to_representation(self, value):
        return exact_str(value)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (`{"balance": ...}` is a mistake, not a no-op)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


class CurrencyField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=sorted(CURRENCIES), **kwargs)
