"""What every management API shares: strict input serializers and money in and out.

In: an amount may be a JSON number (`20000.00`, as in the seed's curl) or a string
(`"20000.00"`). The wallet views parse JSON numbers straight to Decimal (`DecimalJSONParser`),
so no amount ever passes through a float.

Out: every amount is an exact decimal string with at least 2 and at most 8 places:
`"20000.00"`, `"12.50"`, `"0.000123"`. Nothing is rounded away (a single call can cost a
millionth of a dollar), yet balances read like money. Round half-up to cents for display.
"""

import json
import re
from datetime import date
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError

from chargeback.money import CURRENCIES, amount_problem, exact_str, parse_amount

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


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
    """A positive amount as a JSON number or string, parsed with chargeback.money.parse_amount
    and checked by its one rule (chargeback.money.amount_problem)."""

    default_error_messages = {"invalid": 'must be a number, e.g. 20000.00 or "20000.00"'}

    def to_internal_value(self, data):
        if isinstance(data, list | dict):
            self.fail("invalid")
        try:
            amount = parse_amount(data.strip() if isinstance(data, str) else data)
        except ValueError:
            self.fail("invalid")
        problem = amount_problem(amount)
        if problem:
            raise serializers.ValidationError(problem)
        return amount

    def to_representation(self, value):
        return exact_str(value)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (`{"balance": ...}` or a typo like `threshold` is a
    mistake, not a no-op) and bodies that are not objects."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


class CurrencyField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=sorted(CURRENCIES), **kwargs)


class DayField(serializers.DateField):
    """A calendar day as YYYY-MM-DD. A well-formed but impossible date is named with what is
    wrong with it ("2026-05-32 is not a date: day is out of range for month"), not "wrong
    format"."""

    def to_internal_value(self, value):
        if isinstance(value, str):
            text = value.strip()
            try:
                return date.fromisoformat(text)
            except ValueError as exc:
                if _DAY.fullmatch(text):
                    raise serializers.ValidationError(f"{text} is not a date: {exc}") from None
        return super().to_internal_value(value)
