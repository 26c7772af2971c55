"""Formatting for the dashboard templates; amounts arrive already rounded to the cent."""

from django import template

from chargeback.money import to_cents

register = template.Library()


@register.filter
def get(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def money(value):
    if value is None:
        return "\u2013"
    return f"${to_cents(value):,.2f}"


@register.filter
def pct(value, places=1):
    if value is None:
        return "\u2013"
    return f"{float(value) * 100:.{int(places)}f} %"


@register.filter
def intsep(value):
    return f"{int(value or 0):,}"
