"""chargeback/display.py's formats as template filters: `{% load kt_display %}`, then
`{{ total|money }}`, `{{ entry.amount|amount }}`, `{{ tokens|count }}`."""

from django import template

from chargeback import display

register = template.Library()

register.filter("money", display.money)
register.filter("amount", display.amount)
register.filter("count", display.count)
register.filter("emails", display.emails)
