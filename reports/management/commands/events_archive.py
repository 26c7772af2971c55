"""`python manage.py events_archive --month YYYY-MM [--dir PATH]`: export a month of usage
events to a gzip CSV, check it, then detach and drop its partition (reports/event_archive.py)."""

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from reports.event_archive import ArchiveRefused, events_archive_month


def _month(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
    except ValueError as exc:
        raise CommandError(f"--month: YYYY-MM, not {text!r}") from exc


class Command(BaseCommand):
    help = (
        "Export one month (UTC) of usage events to events-YYYY-MM.csv.gz, check the file "
        "against the partition to the last decimal, then detach and drop the partition. "
        "Refused for a month newer than KT_EVENT_ARCHIVE_MIN_MONTHS or whose rollups differ "
        "from its events."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", required=True, type=_month, metavar="YYYY-MM")
        parser.add_argument("--dir", default=None, help="default: KT_EVENT_ARCHIVE_DIR")

    def handle(self, *args, month, dir, **options):
        try:
            result = events_archive_month(month=month, directory=dir)
        except ArchiveRefused as exc:
            raise CommandError(f"refused: {exc}") from exc
        costs = ", ".join(f"{cost} {currency}" for currency, cost in sorted(result.costs.items()))
        self.stdout.write(
            f"{result.partition}: {result.rows} events ({costs or 'no cost'}) archived to"
            f" {result.path} (sha256 {result.sha256}); partition detached and dropped"
        )
