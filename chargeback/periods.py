"""Calendar periods in an organization's time zone. Dates are whole days, inclusive."""

from datetime import date, datetime, time, timedelta

from chargeback.models import Organization


def day_range(
    organization: Organization, date_from: date, date_to: date
) -> tuple[datetime, datetime]:
    """[start, end) datetimes covering date_from..date_to inclusive, in the organization's zone."""
    tz = organization.tz
    start = datetime.combine(date_from, time.min, tzinfo=tz)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    nxt = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return nxt - timedelta(days=1)


def quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def quarter_end(day: date) -> date:
    start = quarter_start(day)
    return month_end(date(start.year, start.month + 2, 1))


def local_today(organization: Organization, now: datetime | None = None) -> date:
    from django.utils import timezone

    return (now or timezone.now()).astimezone(organization.tz).date()
