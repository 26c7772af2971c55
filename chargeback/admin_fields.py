"""Form fields of the admin that show a stored value as people write it."""

import json
import re
from decimal import Decimal

from django import forms

from chargeback import display
from chargeback.money import exact_str


class EmailListField(forms.CharField):
    """A JSON list of e-mail addresses edited as "a@x.example, b@x.example" (commas, spaces or
    new lines between them); the service validates each address."""

    def __init__(self, **kwargs):
        kwargs.pop("encoder", None)
        kwargs.pop("decoder", None)
        kwargs.pop("max_length", None)
        kwargs.setdefault("help_text", "Separated by commas or new lines.")
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return display.emails(value) if value else ""
        return value

    def to_python(self, value):
        if isinstance(value, list | tuple):
            return list(value)
        text = (value or "").strip()
        if text.startswith("["):  # the JSON list the field used to show is still understood
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return [str(item) for item in parsed]
        return [part for part in re.split(r"[\s,;]+", text) if part]

    def has_changed(self, initial, data):
        return self.to_python(initial) != self.to_python(data)


class AmountInput(forms.NumberInput):
    """An amount's input shows it as typed, not at storage precision: 30000.00, not
    30000.00000000 (every stored digit of a sub-cent amount is kept: 0.000123)."""

    def format_value(self, value):
        if isinstance(value, Decimal):
            return exact_str(value)
        return super().format_value(value)
