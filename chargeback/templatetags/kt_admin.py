"""A date hierarchy for tables of a year of events.

Django's own runs SELECT DISTINCT date_trunc(...) over every filtered row to list the years,
months or days that have data: a full scan of the organization's events. This one reads only the
first and last timestamp (MIN/MAX, answered from the (organization, created_at) index) and lists
every period between them; a period without rows simply shows an empty list.
"""

import datetime

from django import template
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

register = template.Library()


def _local(value):
    return timezone.localtime(value) if timezone.is_aware(value) else value


def _months(first, last):
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        yield datetime.date(year, month, 1)
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)


@register.inclusion_tag("admin/date_hierarchy.html")
def kt_date_hierarchy(cl):
    field = cl.date_hierarchy
    year_field, month_field, day_field = (f"{field}__{part}" for part in ("year", "month", "day"))
    year, month, day = (cl.params.get(f) for f in (year_field, month_field, day_field))
    year, month, day = (v[-1] if isinstance(v, list) else v for v in (year, month, day))

    def link(filters):
        return cl.get_query_string(filters, [f"{field}__"])

    bounds = cl.queryset.aggregate(first=Min(field), last=Max(field))
    if bounds["first"] is None:
        return {"show": False}
    first, last = _local(bounds["first"]), _local(bounds["last"])
    if not (year or month or day) and first.year == last.year:
        year = first.year
        if first.month == last.month:
            month = first.month

    if year and month and day:
        when = datetime.date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({year_field: year, month_field: month}),
                "title": capfirst(formats.date_format(when, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(when, "MONTH_DAY_FORMAT"))}],
        }
    if year and month:
        days = range(first.day, last.day + 1)
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: d}),
                    "title": capfirst(
                        formats.date_format(
                            datetime.date(int(year), int(month), d), "MONTH_DAY_FORMAT"
                        )
                    ),
                }
                for d in days
            ],
        }
    if year:
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year, month_field: m.month}),
                    "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT")),
                }
                for m in _months(first, last)
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [
            {"link": link({year_field: str(y)}), "title": str(y)}
            for y in range(first.year, last.year + 1)
        ],
    }
