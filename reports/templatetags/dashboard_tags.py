"""Formatting for the dashboard templates, by chargeback/display.py's rules."""

from django import template

from chargeback import display

register = template.Library()


@register.filter
def get(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def money(value):
    return display.DASH if value is None else f"${display.money(value)}"


@register.filter
def pct(value, places=1):
    if value is None:
        return "\u2013"
    return f"{float(value) * 100:.{int(places)}f} %"


@register.filter
def intsep(value):
    return display.count(value)
